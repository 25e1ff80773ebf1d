"""``cdas grpo`` end to end at the tiny preset: a real policy really learns under real GRPO, the
figures it reports are the ones its groups' rewards make, and the command runs, fails clearly on
bad input and rides out a coordinator outage (``cdas serve`` on a real redis-server, SIGKILLed
mid-run and restarted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from cdas_grpo.run import start_run, train_run
from cdas_grpo.settings import PRESETS
from cdas_grpo.warmstart import prompt_sets, warm_start

import cdas
from cdas.core.results import ParsedResults, Result
from cdas.core.views import Advance, ReportOutcome
from cdas.service.process import serve_process
from tests.redis_servers import RedisServer, free_port

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)
TINY = PRESETS["tiny"]
CPU = torch.device("cpu")


class Recording(cdas.Coordinator):
    """The library, keeping every report it was sent."""

    def __init__(self) -> None:
        super().__init__(cdas.MemoryStore())
        self.posted: list[tuple[int, list[Mapping[str, Any]]]] = []

    def report_results(
        self,
        run_id: str,
        step: int,
        results: Iterable[Mapping[str, Any] | Result] | ParsedResults,
    ) -> ReportOutcome:
        given = self._record(step, results)
        return super().report_results(run_id, step, given)

    def advance(
        self,
        run_id: str,
        step: int,
        results: Iterable[Mapping[str, Any] | Result] | ParsedResults,
        size: int,
    ) -> Advance:
        given = self._record(step, results)
        return super().advance(run_id, step, given, size)

    def _record(
        self, step: int, results: Iterable[Mapping[str, Any] | Result] | ParsedResults
    ) -> list[Mapping[str, Any] | Result]:
        assert not isinstance(results, ParsedResults), "the trainer posts results as dicts"
        given = list(results)
        self.posted.append((step, [dict(r) for r in given if isinstance(r, Mapping)]))
        return given


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    sets = prompt_sets(TINY)
    state, report = warm_start(TINY, sets, tmp_path_factory.mktemp("warm"), CPU)
    yield sets, state, report
    torch.set_num_threads(threads)


def _train(strategy: str, warm: Any, steps: int) -> tuple[Recording, list[Any], Any]:
    sets, state, report = warm
    settings = TINY.with_(steps=steps)
    coord = Recording()
    name = start_run(coord, settings, strategy, 0, "t", sets.train)
    records = train_run(coord, name, settings, state, sets, 0, CPU).records
    return coord, records, report


def test_random_learns_and_every_figure_is_what_the_posted_rewards_make(warm: Any) -> None:
    coord, records, report = _train("random", warm, 12)
    g = TINY.group
    assert 0.05 < report.heldout_accuracy < 0.95  # something left to learn
    assert records[-1].accuracy > report.heldout_accuracy + 0.015, (
        report.heldout_accuracy,
        [round(r.accuracy, 3) for r in records],
    )
    history = {s.step: s for s in coord.get_state("t-random-s0").history}
    for r in records:
        posted = [res for step, part in coord.posted if step == r.step for res in part]
        assert len(posted) == TINY.batch
        assert r.rollouts == TINY.batch * g
        assert all(len(res["rewards"]) == g for res in posted)
        equal = [len(set(res["rewards"])) == 1 for res in posted]
        assert r.zero_gradient == pytest.approx(sum(equal) / len(equal))
        assert history[r.step].zero_gradient_ratio == pytest.approx(r.zero_gradient)
        mean = sum(sum(res["rewards"]) for res in posted) / (len(posted) * g)
        assert r.pass_rate == pytest.approx(mean)
        assert r.seconds > 0
        assert r.cost == pytest.approx(r.seconds / 3600)


def test_dynamic_sampling_pays_for_every_round_and_trains_on_informative_groups(warm: Any) -> None:
    coord, records, _ = _train("dynamic", warm, 4)
    g = TINY.group
    for r in records:
        parts = [part for step, part in coord.posted if step == r.step]
        assert len(parts) == r.rounds >= 1
        assert r.rollouts == sum(len(p) for p in parts) * g
        informative = sum(1 for p in parts for res in p if len(set(res["rewards"])) > 1)
        assert r.trained == min(TINY.batch, informative)
        assert len(parts[0]) == min(TINY.oversample * TINY.batch, TINY.train_prompts)


def _grpo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("CDAS_API_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "cdas.cli", "grpo", "--preset", "tiny", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_the_command_compares_strategies_and_leaves_its_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _grpo("--strategies", "random,cdas,dynamic", "--seeds", "1", "--workers", "2",
                 "--out", str(out), "--page", str(tmp_path / "grpo.md"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warm start: held-out accuracy" in done.stdout
    for strategy in ("random", "cdas", "dynamic"):
        assert f"\n{strategy} " in done.stdout
    outputs = ("steps.csv", "rungs.csv", "summary.csv", "summary.md", "settings.json",
               "warmstart.json", "zero_gradient.png", "accuracy.png", "dynamics.png",
               "competence.png")  # fmt: skip
    for name in outputs:
        assert (out / name).stat().st_size > 0, name
    steps = (out / "steps.csv").read_text().splitlines()
    assert len(steps) == 1 + 3 * TINY.steps
    page = (tmp_path / "grpo.md").read_text()
    assert "always solved" in page
    assert "| cdas |" in page
    again = _grpo("--strategies", "random", "--seeds", "1", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "warm start [" not in again.stderr  # read from its file, not trained again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strategies", "cdas,nope"), "strategy 'nope' does not exist"),
        (("--preset", "huge"), "--preset 'huge' does not exist"),
        (("--steps", "0"), "--steps 0: give at least 1"),
        (("--device", "cuda"), "--device 'cuda'"),
        (
            ("--url", "http://127.0.0.1:9", "--retry-for", "0.5"),
            "the coordinator at http://127.0.0.1:9 does not answer",
        ),
    ],
)
def test_bad_input_ends_with_a_message_naming_it(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    done = _grpo(*args, "--out", str(tmp_path), timeout=120)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_coordinator_outage_mid_run_is_ridden_out(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The service is SIGKILLed while the run trains and restarted 2 s later on the same ports
    and Redis; the run finishes and every step's results are applied exactly once."""
    steps = 40
    port, grpc_port = free_port(), free_port()
    ports = ("--port", str(port), "--grpc-port", str(grpc_port))
    url = f"http://127.0.0.1:{port}"
    run = f"{os.getpid()}-random-s0"
    store = f"{redis_server.url.rsplit('/', 1)[0]}/13"
    with serve_process("--store", store, *ports) as served:
        job = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cdas.cli",
                "grpo",
                "--preset",
                "tiny",
                "--steps",
                str(steps),
                "--strategies",
                "random",
                "--seeds",
                "1",
                "--url",
                url,
                "--retry-for",
                "60",
                "--run-prefix",
                str(os.getpid()),
                "--out",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
        try:
            deadline = time.monotonic() + 180
            step = None
            while time.monotonic() < deadline and step is None:
                answer = httpx.get(f"{url}/v1/runs/{run}")
                if answer.status_code == 200 and answer.json()["step"]:
                    step = answer.json()["step"]
                time.sleep(0.02)
            assert step is not None, "the run never started"
            served.terminate(signal.SIGKILL)
            assert step < steps  # killed mid-run
        except BaseException:
            job.kill()
            raise
    try:
        time.sleep(2.0)
        assert job.poll() is None  # waiting for the coordinator
        with serve_process("--store", store, *ports) as again:
            out, err = job.communicate(timeout=240)
            assert job.returncode == 0, err
            assert "random" in out
            state = httpx.get(f"{again.url}/v1/runs/{run}/state").json()
            history = state["history"]
            assert [h["step"] for h in history] == list(range(1, steps + 1))
            assert all(h["results"] == TINY.batch for h in history)
            info = httpx.get(f"{again.url}/v1/runs/{run}").json()
            assert info["counts"]["results"] == steps * TINY.batch
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
