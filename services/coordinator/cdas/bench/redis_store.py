"""``cdas bench redis``: a full CDAS step through ``RedisStore``, against ``MemoryStore``.

For each N: register N prompts (timed), bring the run to a post-warm-up state (results for every
prompt), then time steady-state steps, next_batch of B plus report_results of the B groups, on
Redis and on the embedded store in the same run. Prints median and p99 per step, their ratio, the
round trips per call, Redis memory per prompt (``INFO memory`` used_memory after the run is built
and loaded, minus before, over N) and the registration time.

Without ``--url`` it starts a private redis-server (Debian package) on a free port, persistence
off, and stops it at the end.

Targets (issue 3): at N = 10^6 a step in at most 10 ms median; at most 150 bytes of Redis memory
per prompt; 10^6 prompts registered in at most 10 s.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import redis

import cdas
from cdas.bench.core import CHUNK, Pupils, _results
from cdas.bench.report import table, target


@dataclass
class RedisRow:
    n: int
    register_s: float
    redis_ms: float
    redis_p99_ms: float
    memory_ms: float
    memory_p99_ms: float
    trips_batch: int
    trips_report: int
    bytes_per_prompt: float


@contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server on a free port (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed; give --url or install the Debian package")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                directory,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait()


def _steps(
    coord: cdas.Coordinator,
    run: str,
    pupils: Pupils,
    size: int,
    steps: int,
    trips: Callable[[], int],
) -> tuple[list[float], list[int], list[int]]:
    times, trips_batch, trips_report = [], [], []
    for step in range(1, steps + 11):
        t0 = time.perf_counter()
        batch = coord.next_batch(run, step, size)
        t1 = time.perf_counter()
        trips_batch.append(trips())
        results = _results(
            batch.prompt_ids, pupils.correct(np.array(batch.prompt_ids, dtype=np.int64))
        )
        t2 = time.perf_counter()
        coord.report_results(run, step, results)
        t3 = time.perf_counter()
        trips_report.append(trips())
        if step > 10:
            times.append((t1 - t0) + (t3 - t2))
    return times, trips_batch, trips_report


def _load(coord: cdas.Coordinator, run: str, n: int, pupils: Pupils) -> None:
    for start in range(0, n, CHUNK):
        idx = np.arange(start, min(n, start + CHUNK))
        coord.report_results(run, 0, _results([str(i) for i in idx], pupils.correct(idx)))


def run(
    url: str | None,
    sizes: list[int],
    batch: int = 1024,
    steps: int = 200,
    seed: int = 0,
    out: TextIO = sys.stdout,
    progress: Callable[[str], None] | None = None,
) -> list[RedisRow]:
    rows = []
    with private_redis() if url is None else _given(url) as where:
        store = cdas.RedisStore(where)
        coord = cdas.Coordinator(store)
        for n in sizes:
            size = min(batch, n)
            store.client.flushdb()
            before = _used_memory(store)
            if progress:
                progress(f"N={n:,}: register on Redis")
            t0 = time.perf_counter()
            coord.put_run("bench", prompts=n, seed=seed)
            register_s = time.perf_counter() - t0
            pupils = Pupils(n, seed)
            if progress:
                progress(f"N={n:,}: load results on Redis")
            _load(coord, "bench", n, pupils)
            per_prompt = (_used_memory(store) - before) / n
            if progress:
                progress(f"N={n:,}: steps on Redis")
            times, trips_b, trips_r = _steps(
                coord, "bench", pupils, size, steps, lambda: store.last_round_trips
            )
            if progress:
                progress(f"N={n:,}: steps on the embedded store")
            memory = cdas.Coordinator(cdas.MemoryStore())
            memory.put_run("bench", prompts=n, seed=seed)
            pupils = Pupils(n, seed)
            _load(memory, "bench", n, pupils)
            mem_times, _, _ = _steps(memory, "bench", pupils, size, steps, lambda: 0)
            rows.append(
                RedisRow(
                    n=n,
                    register_s=register_s,
                    redis_ms=statistics.median(times) * 1e3,
                    redis_p99_ms=float(np.percentile(times, 99)) * 1e3,
                    memory_ms=statistics.median(mem_times) * 1e3,
                    memory_p99_ms=float(np.percentile(mem_times, 99)) * 1e3,
                    trips_batch=int(statistics.median(trips_b)),
                    trips_report=int(statistics.median(trips_r)),
                    bytes_per_prompt=per_prompt,
                )
            )
            store.client.flushdb()
        store.close()
    report(rows, batch, steps, out)
    return rows


def _used_memory(store: cdas.RedisStore) -> int:
    """INFO used_memory, after dropping this process's connections so that the server frees
    their query buffers (a 10^6-prompt registration leaves megabytes there for a while)."""
    store.client.connection_pool.disconnect()
    time.sleep(0.2)
    return int(store.client.info("memory")["used_memory"])


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def report(rows: list[RedisRow], batch: int, steps: int, out: TextIO) -> None:
    print(
        f"cdas bench redis: one CDAS step (next_batch + report_results of B = {batch}) through "
        f"RedisStore and MemoryStore;\n{steps} steady-state steps each, times in ms\n",
        file=out,
    )
    columns = [
        ("N", 10),
        ("register s", 10),
        ("redis p50", 9),
        ("p99", 7),
        ("memory p50", 10),
        ("p99", 6),
        ("ratio", 6),
        ("trips batch/report", 18),
        ("redis B/prompt", 14),
    ]
    cells = [
        [
            f"{r.n:,}",
            f"{r.register_s:.2f}",
            f"{r.redis_ms:.2f}",
            f"{r.redis_p99_ms:.2f}",
            f"{r.memory_ms:.2f}",
            f"{r.memory_p99_ms:.2f}",
            f"{r.redis_ms / r.memory_ms:.1f}x",
            f"{r.trips_batch}/{r.trips_report}",
            f"{r.bytes_per_prompt:.0f}",
        ]
        for r in rows
    ]
    table(columns, cells, out)
    print(
        "\nratio: Redis step over embedded step; trips: round trips to Redis per call (median); "
        "redis B/prompt:\nINFO used_memory after registering and loading the run, minus before, "
        "over N\n",
        file=out,
    )
    for line in targets(rows):
        print(line, file=out)


def targets(rows: list[RedisRow]) -> list[str]:
    lines = []
    big = max(rows, key=lambda r: r.n)
    if big.n >= 10**6:
        lines.append(
            target(
                f"step at N = {big.n:,} <= 10 ms median: {big.redis_ms:.2f} ms", big.redis_ms <= 10
            )
        )
        lines.append(
            target(
                f"{big.n:,} prompts registered in <= 10 s: {big.register_s:.2f} s",
                big.register_s <= 10,
            )
        )
    worst = max(r.bytes_per_prompt for r in rows)
    lines.append(target(f"Redis memory <= 150 bytes per prompt: {worst:.0f} at most", worst <= 150))
    return lines


__all__: list[Any] = ["run"]
