"""The ``cdas`` command as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cdas.sim.demo import ARMS

CDAS = str(Path(sys.executable).parent / "cdas")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CDAS, *args], capture_output=True, text=True, timeout=300, check=False)


def test_demo_prints_a_table_per_strategy(tmp_path: Path) -> None:
    done = _run(
        "demo", "--exit", "--port", "0", "--grpc-port", "0", "--steps", "12", "--out", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    rows = {
        cells[0]: cells[1:]
        for cells in (line.split() for line in done.stdout.splitlines())
        if len(cells) > 5 and cells[0] in ARMS
    }
    # the default arms (the paper's strategies and the CDAS variants), each trained over REST on
    # math12k: zero-gradient share, accuracy
    assert set(rows) == set(ARMS)
    assert {"cdas-retire", "cdas-fast", "cdas-retire-fast", "cdas-mix"} <= set(rows)
    for cells in rows.values():
        assert 0.0 < float(cells[0]) < 1.0  # zero-gradient share, mean
        assert 0.0 < float(cells[3]) < 100.0  # final accuracy, %
    # dynamic sampling trains on informative groups only, so it learns fastest per step
    assert float(rows["dynamic"][3]) > float(rows["random"][3])
    # Random reaches its own final accuracy at its last step
    assert rows["random"][6] == "12.0"


def test_bench_core_quick_reports_targets() -> None:
    done = _run("bench", "core", "--sizes", "1000,3000", "--steps", "5", "--naive-steps", "1")
    assert done.returncode == 0, done.stderr
    assert "bytes/prompt" in done.stdout
    assert "step at N = 3,000 / step at N = 1,000" in done.stdout
    rows = [
        line.split()
        for line in done.stdout.splitlines()
        if line.strip().startswith(("1,000", "3,000"))
    ]
    assert len(rows) == 2
    assert all(float(row[1]) > 0 for row in rows)


def test_bad_arguments_exit_with_usage() -> None:
    done = _run("bench", "core", "--sizes", "lots")
    assert done.returncode == 2
    assert "sizes 'lots'" in done.stderr
    assert _run("version").stdout.strip() == "0.1.0"


def test_bench_redis_quick_runs_against_a_private_server() -> None:
    done = _run("bench", "redis", "--sizes", "2000", "--steps", "3", "--batch", "256")
    assert done.returncode == 0, done.stderr
    row = next(
        line.split() for line in done.stdout.splitlines() if line.strip().startswith("2,000")
    )
    assert float(row[2]) > 0  # the Redis step's median
    assert row[7] == "3/2"  # round trips: next_batch 3, report_results 2
    assert "Redis memory <= 150 bytes per prompt" in done.stdout


def test_bench_service_runs_every_door_against_a_served_process() -> None:
    done = _run(
        "bench",
        "service",
        "--sizes",
        "2000",
        "--steps",
        "3",
        "--batch",
        "128",
        "--concurrency",
        "1,2",
        "--stream-steps",
        "1",
        "--stream-runs",
        "1,2",
    )
    assert done.returncode == 0, done.stderr
    rows = {
        (cells[0], cells[1], cells[2]): cells
        for cells in (line.split() for line in done.stdout.splitlines())
        if len(cells) == 8 and cells[1] in ("2-calls", "1-call")
    }
    doors, ways = ("library", "rest", "grpc"), ("2-calls", "1-call")
    assert set(rows) == {(d, w, c) for d in doors for w in ways for c in ("1", "2")}
    for cells in rows.values():
        assert float(cells[3]) > 0  # p50 ms
        assert float(cells[5]) > 0  # steps/s
    assert rows[("library", "2-calls", "1")][6] == "1.00x"  # the baseline's own ratio
    assert rows[("library", "1-call", "1")][6] == "1.00x"
    assert "REST p50 at concurrency 1 <= 10 ms" in done.stdout
    assert "grpc one-call step p50 at concurrency 1 <= 8 ms" in done.stdout
    streamed = {
        (" ".join(cells[:-6]), cells[-6], cells[-5]): cells
        for cells in (
            line.split() for line in done.stdout.split("streamed results:")[1].splitlines()
        )
        if cells and cells[0] in ("library", "rest", "grpc", "one") and len(cells) >= 7
    }
    streams = [("library", "1"), ("library", "2"), ("one txn each", "1"), ("rest", "1")]
    streams += [("rest", "2"), ("grpc", "1"), ("grpc", "2")]
    assert set(streamed) == {(d, r, runs) for d, r in streams for runs in ("1", "2")}
    for cells in streamed.values():
        assert float(cells[-3]) > 0  # reports/s
    assert "[met] every run ends identical to its results applied in one call" in done.stdout
