"""``cdas simulate`` and ``cdas demo`` as a user runs them: the installed console script, in a
subprocess, writing tables, plots and the results page."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from cdas.sim import experiment, plots, summary
from tests.realrun_fake import MADE_BY, write_run

CDAS = str(Path(sys.executable).parent / "cdas")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIM_STRATEGIES = ("cdas", "random", "dynamic")


def _run(
    *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CDAS, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
    )


def _assert_pictures(out: Path) -> None:
    for name in plots.FILES:
        path = out / name
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 10_000, f"{name} is only {len(data)} bytes"
        pixels = np.asarray(image.imread(path))
        assert pixels.ndim == 3
        assert pixels.shape[0] > 200
        assert pixels.shape[1] > 200
        assert float(pixels.std()) > 0.01, f"{name} is one flat colour"
        assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 20


@pytest.fixture(scope="module")
def simulated(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("sim")
    real = write_run(out / "grpo", MADE_BY)
    done = _run(
        "simulate",
        "--strategies",
        ",".join(SIM_STRATEGIES),
        "--steps",
        "15",
        "--seeds",
        "2",
        "--prompts",
        "2000",
        "--batch",
        "128",
        "--out",
        str(out),
        "--page",
        str(out / "results.md"),
        "--real-run",
        str(real),
        cwd=out,
    )
    return out, done


def test_simulate_exits_zero_and_prints_the_table(
    simulated: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = simulated
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[0] == "strategy"
    assert [line.split()[0] for line in lines[1:4]] == list(SIM_STRATEGIES)
    assert f"wrote {out}/steps.csv" in done.stdout
    assert f"wrote {out / 'results.md'}" in done.stdout
    assert "simulate [" in done.stderr  # the progress bar


def test_simulate_writes_one_row_per_strategy_seed_and_step(
    simulated: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = simulated
    records = experiment.read_csv(out / "steps.csv")
    assert len(records) == 3 * 2 * 15
    assert {(r.strategy, r.seed, r.step) for r in records} == {
        (s, seed, step) for s in SIM_STRATEGIES for seed in (0, 1) for step in range(1, 16)
    }
    assert all(r.rollouts >= 128 * 8 for r in records)
    with (out / "summary.csv").open() as src:
        rows = list(csv.DictReader(src))
    assert [row["strategy"] for row in rows] == list(SIM_STRATEGIES)
    expected = {row.strategy: row for row in summary.summarize(records)}
    for row in rows:
        assert float(row["final_accuracy_mean"]) == pytest.approx(
            expected[row["strategy"]].final_accuracy.mean
        )
        assert row["final_accuracy_n"] == "2"
    md = (out / "summary.md").read_text()
    assert md == summary.markdown(summary.summarize(records))


def test_simulate_draws_four_real_pictures(
    simulated: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = simulated
    assert sorted(p.name for p in out.glob("*.png")) == sorted(plots.FILES)
    _assert_pictures(out)


def test_simulate_writes_the_results_page(
    simulated: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = simulated
    page = (out / "results.md").read_text()
    assert page.startswith("# Results")
    for strategy in SIM_STRATEGIES:
        assert f"| {strategy} |" in page
    # the calibration, its identifiability, the held-out figures, each with its tolerance
    assert "| strategy | figure | step | paper | twin | tolerance | inside |" in page
    assert "| random | accuracy | 55 | 43.20 |" in page
    assert "| prioritized | zero-gradient | 110 | 0.53 |" in page
    assert "| parameter | fitted | prior | sd, Random's targets |" in page
    assert "| `hard` |" in page
    assert "| strategy | figure | step | paper | twin's prediction | tolerance | inside |" in page
    assert "| cdas | accuracy | 110 | 45.89 |" in page
    # the validation on a real run (here one the twin made itself: every prediction inside)
    assert "Fitted to `" in page
    assert str(out / "grpo") in page
    assert "| cdas | mean zero-gradient share | 12 |" in page
    assert "3 of 3 inside their tolerance." in page
    words = " ".join(page.split())
    for setting in ("2 seeds per strategy", "15 steps", "N = 2,000", "B = 128", "G = 8"):
        assert setting in words
    for name in plots.FILES:
        assert f"]({name})" in page or f"](./{name})" in page
    # every twin parameter is listed with its meaning
    assert "| `specific` |" in page
    assert "| `gpu_hours_per_unit` |" in page


def test_simulate_rejects_an_unknown_strategy(tmp_path: Path) -> None:
    done = _run(
        "simulate", "--strategies", "cdas,nosuchstrategy", "--steps", "2", "--out", str(tmp_path)
    )
    assert done.returncode != 0
    assert "'nosuchstrategy'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "steps.csv").exists()


@pytest.mark.parametrize("page", [True, False])
def test_simulate_refuses_a_real_run_it_cannot_use(tmp_path: Path, page: bool) -> None:
    """--real-run names a directory without a run (before anything is simulated), or comes
    without --page, where it would go."""
    real = tmp_path / "grpo" if page else write_run(tmp_path / "grpo", MADE_BY)
    real.mkdir(exist_ok=True)
    extra = ("--page", str(tmp_path / "r.md")) if page else ()
    done = _run(
        "simulate", "--strategies", "random", "--steps", "2", "--out", str(tmp_path / "out"),
        "--real-run", str(real), *extra,
    )  # fmt: skip
    assert done.returncode != 0
    assert (
        ("no steps.csv" in done.stderr and str(real) in done.stderr)
        if page
        else ("give --page" in done.stderr)
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "steps.csv").exists()


@pytest.mark.parametrize(
    ("param", "named"),
    [("nosuchparam=1", "'nosuchparam'"), ("spread=abc", "spread=abc"), ("spread", "'spread'")],
)
def test_simulate_rejects_a_bad_param(tmp_path: Path, param: str, named: str) -> None:
    done = _run("simulate", "--strategies", "random", "--param", param, "--out", str(tmp_path))
    assert done.returncode != 0
    assert named in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "steps.csv").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--param", "prompts=2000.5"], "prompts = 2000.5"),
        (["--param", "group=0"], "group = 0"),
        (["--param", "spread=inf"], "spread = inf"),
        (["--seeds", "0"], "--seeds 0"),
        (["--steps", "0"], "--steps 0"),
        (["--strategies", ","], "--strategies ','"),
        (["--prompts", "100", "--batch", "200"], "--batch 200"),
    ],
)
def test_simulate_refuses_settings_it_cannot_run(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    done = _run(
        "simulate", "--strategies", "random", "--steps", "2", *flags, "--out", str(tmp_path)
    )
    assert done.returncode != 0
    assert named in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "steps.csv").exists()


def test_simulate_takes_a_whole_number_param(tmp_path: Path) -> None:
    done = _run(
        "simulate",
        "--strategies",
        "random",
        "--steps",
        "2",
        "--seeds",
        "1",
        "--param",
        "prompts=2000",
        "--param",
        "batch=100",
        "--param",
        "group=4",
        "--band-sample",
        "0",
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    records = experiment.read_csv(tmp_path / "steps.csv")
    assert [r.rollouts for r in records] == [100 * 4, 100 * 4]


def test_simulate_applies_a_param(tmp_path: Path) -> None:
    done = _run(
        "simulate",
        "--strategies",
        "random",
        "--steps",
        "3",
        "--seeds",
        "1",
        "--prompts",
        "1000",
        "--batch",
        "64",
        "--band-sample",
        "0",
        "--param",
        "wrong_length=1",
        "--param",
        "train_cost=0",
        "--param",
        "gpu_hours_per_unit=1",
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    # every rollout costs exactly one unit, training nothing: cost = rollouts
    for r in experiment.read_csv(tmp_path / "steps.csv"):
        assert r.cost == pytest.approx(r.rollouts)
        assert r.rollouts == 64 * 8


def test_demo_serves_trains_and_draws(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = _run(
        "demo",
        "--exit",
        "--port",
        "0",
        "--grpc-port",
        "0",
        "--steps",
        "12",
        "--strategies",
        "cdas,random",
        "--out",
        str(out),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    address = re.search(r"^\s*REST\s+http://127\.0\.0\.1:(\d+)\b", done.stdout, re.MULTILINE)
    assert address is not None, done.stdout
    assert int(address.group(1)) > 0
    page = re.search(r"^\s*page\s+(http://127\.0\.0\.1:\d+/)\s", done.stdout, re.MULTILINE)
    assert page is not None, done.stdout
    assert page.group(1) == f"http://127.0.0.1:{address.group(1)}/"
    assert re.search(r"^\s*gRPC\s+127\.0\.0\.1:[1-9]\d*\s*$", done.stdout, re.MULTILINE)
    assert "12,000 prompts" in done.stdout
    table = [line.split() for line in done.stdout.splitlines()]
    header = next(i for i, cells in enumerate(table) if cells[:2] == ["strategy", "zero-grad"])
    assert [cells[0] for cells in table[header + 1 : header + 3]] == ["cdas", "random"]
    for cells in table[header + 1 : header + 3]:
        zero_gradient, accuracy = float(cells[1]), float(cells[4])
        assert 0.0 < zero_gradient < 1.0
        assert 0.0 < accuracy < 100.0
    assert "CDAS's batch at step 12" in done.stdout
    _assert_pictures(out)
    records = experiment.read_csv(out / "steps.csv")
    assert {(r.strategy, r.step) for r in records} == {
        (s, step) for s in ("cdas", "random") for step in range(1, 13)
    }
    assert all(r.rollouts == 1024 * 8 for r in records)


def test_demo_with_a_missing_dataset_names_the_path(tmp_path: Path) -> None:
    done = _run(
        "demo",
        "--data",
        "/nonexistent.parquet",
        "--exit",
        "--port",
        "0",
        "--grpc-port",
        "0",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "/nonexistent.parquet" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "demo-out").exists()
