"""The rollout worker end to end on CPU: a tiny model built in the test (no download), real
sampling with transformers, real grading with math-verify on math12k prompts, a real coordinator
(``cdas serve`` subprocesses) on a real redis-server, and real faults (the coordinator killed and
restarted, the worker SIGKILLed and restarted, result posts failing in the network)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from cdas_rollout.backends import SamplingSettings, TransformersBackend
from cdas_rollout.dataset import load_dataset
from cdas_rollout.grading import grade
from cdas_rollout.worker import RolloutWorker, StepReport, WorkerConfig, load_reports

import cdas
from cdas.client import RestClient, RetryPolicy
from cdas.core import snapshot as snapshot_format
from cdas.core.results import Result
from cdas.core.views import Advance, Batch, ReportOutcome
from tests.conftest import assert_same_state, logical_state
from tests.recording import CallLog
from tests.redis_servers import RedisServer, free_port
from tests.services import serve_process
from tests.tiny_lm import MathLM, build_math_lm

B, G, MAX_NEW_TOKENS = 8, 4, 24


# torch's own lazily imported modules (torch.utils.mkldnn) warn about torch.jit on import
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)


@pytest.fixture(scope="session")
def math_lm(tmp_path_factory: pytest.TempPathFactory) -> MathLM:
    """The tiny model taught 24 math12k prompts (built once per session, about 15 s)."""
    return build_math_lm(tmp_path_factory.getbasetemp() / "tiny-math-lm")


@pytest.fixture(scope="module")
def backend(math_lm: MathLM) -> Iterator[TransformersBackend]:
    """The tiny model on one torch thread (see ``cli_env``), restored for later modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TransformersBackend(
        math_lm.model, SamplingSettings(max_new_tokens=MAX_NEW_TOKENS, temperature=1.0, seed=0)
    )
    torch.set_num_threads(threads)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def new_run_id() -> str:
    return f"rollout-{uuid.uuid4().hex[:10]}"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def cli_command(math_lm: MathLM, coordinator: str, run_id: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cdas_rollout",
        "--coordinator",
        coordinator,
        "--run",
        run_id,
        "--data",
        str(math_lm.data),
        "--backend",
        "transformers",
        "--model",
        str(math_lm.model),
        "--batch-size",
        str(B),
        "-n",
        str(G),
        "--max-new-tokens",
        str(MAX_NEW_TOKENS),
        "--sampling-seed",
        "0",
        *extra,
    ]


def cli_env(**extra: str) -> dict[str, str]:
    """The worker's environment: no token unless given; one OpenMP thread (a tiny model gains
    nothing from two and slows down badly when the test process competes for the 2 cores)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.pop("CDAS_API_TOKEN", None)
    env.update(extra)
    return env


def assert_applied_exactly_once(
    client: RestClient, run_id: str, reports: list[StepReport], steps: int, size: int
) -> None:
    """Every (step, prompt) of the worker's reports was applied once and only once: the run
    counts steps x B results and steps x B x G rollouts, each prompt's ``updates`` is the number
    of steps whose batch held it, and its last pass rate is the one the worker graded last."""
    assert [r.step for r in reports] == list(range(1, steps + 1))
    info = client.get_run(run_id)
    assert info.results == steps * B
    assert info.rollouts == steps * B * G
    assert info.duplicates == sum(r.duplicates or 0 for r in reports)
    for r in reports:
        assert len(r.prompt_ids) == B
        assert (r.applied or 0) + (r.duplicates or 0) == B
    history = client.get_state(run_id).history
    assert [h.step for h in history] == list(range(1, steps + 1))
    assert sum(h.rollouts for h in history) == steps * B * G
    counts = Counter(pid for r in reports for pid in r.prompt_ids)
    last: dict[str, tuple[int, float]] = {}
    for r in reports:
        for pid, rate in zip(r.prompt_ids, r.pass_rates, strict=True):
            last[pid] = (r.step, rate)
    for pid in (str(i) for i in range(size)):
        prompt = client.get_prompt(run_id, pid)
        assert prompt.updates == counts[pid], pid
        if counts[pid]:
            assert (prompt.last_step, prompt.last_pass_rate) == last[pid], pid


# ---------------------------------------------------------------------------------------------
# end to end, with an exact check of CDAS's update against the library on a MemoryStore


def test_worker_drives_cdas_end_to_end(
    math_lm: MathLM, backend: TransformersBackend, redis_server: RedisServer, tmp_path: Path
) -> None:
    dataset = load_dataset(math_lm.data)
    assert dataset.ids == [str(i) for i in range(24)]
    n = len(dataset)
    run_id = new_run_id()
    replay = cdas.Coordinator(cdas.MemoryStore())  # the same run, in process, as the reference
    replay.put_run(run_id, strategy="cdas", seed=7, prompts=n)
    with (
        serve_process("--store", redis_server.url) as served,
        RestClient(served.url, retry=RetryPolicy(for_seconds=30)) as client,
    ):
        assert client.put_run(run_id, strategy="cdas", seed=7, prompts=n).created
        recording = CallLog(client)
        worker = RolloutWorker(
            recording,
            dataset,
            backend,
            WorkerConfig(run_id, B, G, state_dir=tmp_path / "state", keep_completions=True),
        )
        updates: Counter[str] = Counter()
        reports = []
        for step in range(1, 5):
            before = {pid: client.get_prompt(run_id, pid).difficulty for pid in dataset.ids}
            report = worker.run_step(step, following=step < 4)
            reports.append(report)
            # the batch is the strategy's (same seed, same state: the same ids in process)
            expected = replay.next_batch(run_id, step, B)
            assert report.prompt_ids == expected.prompt_ids
            assert report.batch_competence == pytest.approx(expected.competence, abs=1e-12)
            # real generation, real grading: the rewards are the grader's on the texts
            assert report.completions is not None
            assert [len(g) for g in report.completions] == [G] * B
            for pid, texts, rewards in zip(
                report.prompt_ids, report.completions, report.rewards, strict=True
            ):
                assert rewards == [grade(t, dataset[pid].answer) for t in texts]
            # D and C as CDAS says, checked two ways: the formulas, and the library's replay
            outcome = replay.report_results(run_id, step, report.results())
            assert (report.applied, report.duplicates) == (B, 0)
            assert report.competence == pytest.approx(outcome.competence, abs=1e-12)
            c_prev = report.batch_competence
            difficulties = {}
            for pid, rewards in zip(report.prompt_ids, report.rewards, strict=True):
                updates[pid] += 1
                remote = client.get_prompt(run_id, pid)
                local = replay.get_prompt(run_id, pid)
                s = sum(r > 0.5 for r in rewards) / G
                assert remote.updates == updates[pid]
                assert remote.last_pass_rate == s
                assert remote.last_step == step
                d_n = sigmoid(c_prev - before[pid]) - s  # P(x) - s_n(x)
                want = before[pid] + (d_n - before[pid]) / updates[pid]
                assert remote.difficulty == pytest.approx(want, abs=1e-12)
                assert remote.difficulty == pytest.approx(local.difficulty, abs=1e-12)
                difficulties[pid] = remote.difficulty
            all_d = [client.get_prompt(run_id, pid).difficulty for pid in dataset.ids]
            assert report.competence == pytest.approx(-sum(all_d) / n, abs=1e-12)  # C = -mean D
        # warm-up: the first 3 steps (24 prompts / B 8) sample every prompt once
        assert sorted(p for r in reports[:3] for p in r.prompt_ids) == sorted(dataset.ids)
        # the tiny model's groups are mixed: all right, all wrong and in between
        rates = [rate for r in reports for rate in r.pass_rates]
        assert 0.0 in rates
        assert 1.0 in rates
        assert any(0 < rate < 1 for rate in rates)
        assert_applied_exactly_once(client, run_id, reports, 4, n)
        assert load_reports(tmp_path / "state") == reports
        # each step's post carried the next step's batch, but the last; the run's whole state is
        # the reference's, whose steps were asked and posted with the two calls
        assert recording.calls == [
            ("next_batch", 1, 0),
            ("advance", 1, 0),
            ("advance", 2, 0),
            ("advance", 3, 0),
            ("report_results", 4, 0),
        ]
        assert_same_state(
            snapshot_format.decode(client.snapshot(run_id)), logical_state(replay, run_id)
        )


# ---------------------------------------------------------------------------------------------
# the command line, over REST and gRPC, with a token


def test_cli_creates_the_run_reports_steps_and_resumes(
    math_lm: MathLM, redis_server: RedisServer, tmp_path: Path
) -> None:
    run_id = new_run_id()
    state = tmp_path / "state"
    token = "s3cret-rollout"
    with (
        serve_process("--store", redis_server.url, env={"CDAS_API_TOKEN": token}) as served,
        RestClient(served.url, token) as client,
    ):
        create = ["--strategy", "cdas", "--seed", "3", "--param", "warmup=true"]
        first = subprocess.run(
            cli_command(
                math_lm, served.url, run_id, *create, "--steps", "2", "--state-dir", str(state)
            ),
            env=cli_env(CDAS_API_TOKEN=token),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert first.returncode == 0, first.stderr
        assert "step 1: 8 prompts x 4, mean pass rate" in first.stderr
        assert "step 2: 8 prompts x 4" in first.stderr
        info = client.get_run(run_id)
        assert (info.strategy, info.seed, info.size, info.params.get("warmup")) == (
            "cdas",
            3,
            24,
            True,
        )
        assert info.results == 2 * B
        # the same command with --steps 3, over gRPC: put_run is a no-op, steps 1-2 are not redone
        second = subprocess.run(
            cli_command(
                math_lm,
                f"grpc://{served.target}",
                run_id,
                *create,
                "--steps",
                "3",
                "--state-dir",
                str(state),
                "--token",
                token,
            ),
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert second.returncode == 0, second.stderr
        assert "step 1:" not in second.stderr
        assert "step 2:" not in second.stderr
        assert "step 3: 8 prompts x 4" in second.stderr
        reports = load_reports(state)
        assert_applied_exactly_once(client, run_id, reports, 3, 24)
        assert json.loads((state / "state.json").read_text())["next_step"] == 4
        # without the token the coordinator refuses, and the worker says so
        refused = subprocess.run(
            cli_command(math_lm, served.url, run_id, "--steps", "4", "--retry-for", "0"),
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert refused.returncode == 1
        assert "cdas-rollout: error:" in refused.stderr
        assert client.get_run(run_id).results == 3 * B


# ---------------------------------------------------------------------------------------------
# faults


def test_worker_rides_out_a_coordinator_restart(
    math_lm: MathLM, redis_server: RedisServer, tmp_path: Path
) -> None:
    """``cdas serve`` is SIGKILLed mid-run and restarted 2 s later on the same ports and the same
    Redis; the worker keeps retrying (--retry-for) and finishes, every result applied once."""
    run_id = new_run_id()
    state = tmp_path / "state"
    port, grpc_port = free_port(), free_port()
    ports = ("--port", str(port), "--grpc-port", str(grpc_port))
    url = f"http://127.0.0.1:{port}"
    with serve_process("--store", redis_server.url, *ports) as served:
        worker = subprocess.Popen(
            cli_command(
                math_lm,
                url,
                run_id,
                "--strategy",
                "cdas",
                "--steps",
                "4",
                "--state-dir",
                str(state),
                "--retry-for",
                "60",
            ),
            env=cli_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: (state / "done" / "step-0000000001.json").exists(), 120, "step 1")
            served.terminate(signal.SIGKILL)
        except BaseException:
            worker.kill()
            raise
    try:
        time.sleep(2.0)
        assert worker.poll() is None  # still waiting for the coordinator
        assert not (state / "done" / "step-0000000004.json").exists()
        with (
            serve_process("--store", redis_server.url, *ports) as again,
            RestClient(again.url) as client,
        ):
            _, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            reports = load_reports(state)
            assert_applied_exactly_once(client, run_id, reports, 4, 24)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


class FaultyNetwork:
    """An HTTP proxy between the worker and the coordinator that answers 503 to every result
    post of a step >= ``block_from`` (``.../results`` and ``.../advance``: the post never reaches
    the coordinator): a network fault the SDK retries, not a fake coordinator (everything else is
    forwarded)."""

    def __init__(self, upstream: str) -> None:
        self.block_from: int | None = None
        self.blocked = 0
        self.http = httpx.Client(base_url=upstream, timeout=30)
        network = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.forward()

            def do_POST(self) -> None:
                self.forward()

            def do_PUT(self) -> None:
                self.forward()

            def forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                limit = network.block_from
                if (
                    self.command == "POST"
                    and self.path.endswith(("/results", "/advance"))
                    and limit is not None
                    and json.loads(body)["step"] >= limit
                ):
                    network.blocked += 1
                    self.answer(503, b"blocked by the test", "text/plain")
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection", "accept-encoding")
                }
                upstream = network.http.request(
                    self.command, self.path, content=body, headers=headers
                )
                self.answer(
                    upstream.status_code,
                    upstream.content,
                    upstream.headers.get("content-type", "application/json"),
                )

            def answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultyNetwork:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()


def test_worker_killed_after_spooling_reposts_on_restart(
    math_lm: MathLM, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Step 2's results are spooled but cannot be posted (the network drops them); the worker
    is SIGKILLed while retrying. Restarted, it posts the spooled step 2 (the same rewards) before
    anything else and finishes steps 3-4: nothing lost, nothing applied twice."""
    run_id = new_run_id()
    state = tmp_path / "state"
    pending = state / "pending" / "step-0000000002.json"
    with (
        serve_process("--store", redis_server.url) as served,
        FaultyNetwork(served.url) as network,
        RestClient(served.url) as client,
    ):
        network.block_from = 2
        command = cli_command(
            math_lm,
            network.url,
            run_id,
            "--strategy",
            "cdas",
            "--steps",
            "4",
            "--state-dir",
            str(state),
            "--retry-for",
            "60",
        )
        worker = subprocess.Popen(command, env=cli_env(), stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: pending.exists() and network.blocked >= 2, 120, "step 2 spooled")
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        spooled = StepReport.from_dict(json.loads(pending.read_text()))
        assert not (state / "done" / "step-0000000002.json").exists()
        assert json.loads((state / "state.json").read_text())["next_step"] == 2
        assert client.get_run(run_id).results == B  # only step 1 arrived
        for pid in spooled.prompt_ids:
            assert client.get_prompt(run_id, pid).last_step != 2

        network.block_from = None
        restarted = subprocess.run(
            command, env=cli_env(), capture_output=True, text=True, timeout=180
        )
        assert restarted.returncode == 0, restarted.stderr
        assert "step 2: re-posting spooled results (8 prompts)" in restarted.stderr
        assert "step 1:" not in restarted.stderr  # confirmed before the kill: not redone
        assert not pending.exists()
        reports = load_reports(state)
        step2 = reports[1]
        assert step2.recovered
        assert (step2.prompt_ids, step2.rewards) == (spooled.prompt_ids, spooled.rewards)
        assert (step2.applied, step2.duplicates) == (B, 0)
        assert_applied_exactly_once(client, run_id, reports, 4, 24)


class ProcessDiedError(Exception):
    """Stands for the process dying at that instant."""


class DiesAfterPosting:
    """A real coordinator client whose process 'dies' right after the coordinator applied the
    post of ``step``, before the worker could record it."""

    def __init__(self, inner: cdas.Coordinator, step: int) -> None:
        self.inner = inner
        self.step = step

    def next_batch(self, run_id: str, step: int, size: int, round: int = 0) -> Batch:
        return self.inner.next_batch(run_id, step, size, round)

    def report_results(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result]
    ) -> ReportOutcome:
        outcome = self.inner.report_results(run_id, step, results)
        if step == self.step:
            raise ProcessDiedError
        return outcome

    def advance(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result], size: int
    ) -> Advance:
        answer = self.inner.advance(run_id, step, results, size)
        if step == self.step:
            raise ProcessDiedError
        return answer


def test_a_post_applied_but_not_recorded_is_reposted_as_a_duplicate(
    math_lm: MathLM, backend: TransformersBackend, redis_server: RedisServer, tmp_path: Path
) -> None:
    dataset = load_dataset(math_lm.data)
    run_id = new_run_id()
    store = cdas.RedisStore(redis_server.url)
    coordinator = cdas.Coordinator(store)
    try:
        coordinator.put_run(run_id, strategy="cdas", seed=1, prompts=len(dataset))
        config = WorkerConfig(run_id, B, G, state_dir=tmp_path / "state")
        dying = RolloutWorker(DiesAfterPosting(coordinator, 2), dataset, backend, config)
        with pytest.raises(ProcessDiedError):
            dying.run(3)
        assert (tmp_path / "state" / "pending" / "step-0000000002.json").exists()
        assert coordinator.get_run(run_id).results == 2 * B  # step 2 was applied

        reports = RolloutWorker(coordinator, dataset, backend, config).run(3)
        assert [(r.step, r.recovered, r.applied, r.duplicates) for r in reports] == [
            (2, True, 0, B),  # the re-post: a duplicate, it changes nothing
            (3, False, B, 0),
        ]
        info = coordinator.get_run(run_id)
        assert (info.results, info.duplicates, info.rollouts) == (3 * B, B, 3 * B * G)
        counts = Counter(p for r in load_reports(tmp_path / "state") for p in r.prompt_ids)
        for pid in dataset.ids:
            assert coordinator.get_prompt(run_id, pid).updates == counts[pid]
    finally:
        coordinator.delete_run(run_id)
        store.close()


def test_workers_split_a_step_between_them(
    math_lm: MathLM, backend: TransformersBackend, tmp_path: Path
) -> None:
    """Three workers share one step's batch (ids[i::3]); together they report it once."""
    dataset = load_dataset(math_lm.data)
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    coordinator.put_run("split", strategy="cdas", prompts=len(dataset))
    shares = []
    for index in range(3):
        config = WorkerConfig(
            "split", B, 2, worker_index=index, workers=3, state_dir=tmp_path / f"w{index}"
        )
        shares.append(RolloutWorker(coordinator, dataset, backend, config).run(1)[0])
    batch = coordinator.next_batch("split", 1, B)
    assert [len(s.prompt_ids) for s in shares] == [3, 3, 2]
    assert sorted(p for s in shares for p in s.prompt_ids) == sorted(batch.prompt_ids)
    assert [s.applied for s in shares] == [3, 3, 2]
    info = coordinator.get_run("split")
    assert (info.results, info.rollouts) == (B, 2 * B)
