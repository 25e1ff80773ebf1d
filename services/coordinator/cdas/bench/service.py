"""``cdas bench service``: full training steps through the service, over REST and gRPC, on Redis,
against the in-process library on the same Redis, in the same run.

A full step is what a trainer does each step: ``next_batch`` of B = 1024, then
``report_results`` of the B groups. Setup: one run of N prompts is registered and brought to a
post-warm-up state (a result for every prompt), snapshotted, and restored under one run id per
trainer, so every trainer starts from the same state. The service is a real ``cdas serve``
process (``--store redis://...``); the load generator is this process: ``c`` trainer threads,
each stepping its own run (a training run's steps are sequential; concurrency is many runs).

Per door and concurrency: p50 and p99 of the step (the two calls, excluding the trainer's own
work of making results) and steps per second over the whole timed window; the ratio of each
to the library's on the same store.

Targets (issue 4), on a 2-core machine with the load generator on it: at c = 1, REST p50
<= 10 ms; at c = 16, >= 100 steps/s and p99 <= 250 ms; gRPC no slower than REST (steps/s).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import numpy as np

import cdas
from cdas.bench.core import Pupils, _results
from cdas.bench.redis_store import _given, _load, private_redis
from cdas.bench.report import table, target
from cdas.client import GrpcClient, RestClient
from cdas.core.api import Batches
from cdas.service.process import serve_process

Trainer = Batches
"""What the load generator calls: a step's two calls (``cdas.core.api``)."""


@dataclass
class ServiceRow:
    door: str
    concurrency: int
    p50_ms: float
    p99_ms: float
    steps_per_s: float
    base_p50_ms: float
    base_steps_per_s: float


def _trainer_loop(
    client: Trainer,
    run: str,
    pupils: Pupils,
    size: int,
    steps: int,
    first: int,
    times: list[float],
    start: threading.Barrier,
) -> None:
    start.wait()
    for step in range(first, first + steps):
        t0 = time.perf_counter()
        batch = client.next_batch(run, step, size)
        t1 = time.perf_counter()
        results = _results(
            batch.prompt_ids, pupils.correct(np.array(batch.prompt_ids, dtype=np.int64))
        )
        t2 = time.perf_counter()
        client.report_results(run, step, results)
        times.append((t1 - t0) + (time.perf_counter() - t2))


def _measure(
    make_client: Callable[[], Trainer],
    runs: list[str],
    n: int,
    size: int,
    steps: int,
    first: int,
    seed: int,
) -> tuple[float, float, float]:
    """(p50 s, p99 s, steps/s) with one trainer thread per run, after 5 untimed warm-up steps."""
    clients = [make_client() for _ in runs]
    pupils = [Pupils(n, seed + k) for k in range(len(runs))]
    warm: list[float] = []
    for client, run, p in zip(clients, runs, pupils, strict=True):
        _trainer_loop(client, run, p, size, 5, first, warm, threading.Barrier(1))
    times: list[list[float]] = [[] for _ in runs]
    barrier = threading.Barrier(len(runs) + 1)
    threads = [
        threading.Thread(
            target=_trainer_loop,
            args=(clients[k], runs[k], pupils[k], size, steps, first + 5, times[k], barrier),
        )
        for k in range(len(runs))
    ]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for client in clients:
        close = getattr(client, "close", None)
        if close is not None:
            close()
    every = [x for per in times for x in per]
    return statistics.median(every), float(np.percentile(every, 99)), len(every) / wall


def run(
    url: str | None,
    sizes: list[int],
    batch: int = 1024,
    steps: int = 200,
    seed: int = 0,
    concurrency: str = "1,16",
    out: TextIO = sys.stdout,
    progress: Callable[[str], None] | None = None,
) -> list[ServiceRow]:
    levels = [int(c) for c in concurrency.split(",") if c]
    rows: list[ServiceRow] = []
    with private_redis() if url is None else _given(url) as where:
        store = cdas.RedisStore(where)
        library = cdas.Coordinator(store)
        for n in sizes:
            size = min(batch, n)
            store.client.flushdb()
            if progress:
                progress(f"N={n:,}: register and load one run")
            library.put_run("template", prompts=n, seed=seed)
            _load(library, "template", n, Pupils(n, seed))
            snapshot = library.snapshot("template")
            runs = [f"trainer-{k}" for k in range(max(levels))]
            with serve_process("--store", where, "--log-level", "warning", "--grace", "2") as srv:
                doors: list[tuple[str, Callable[[], Trainer]]] = [
                    ("library", lambda: library),
                    ("rest", lambda: RestClient(srv.url)),
                    ("grpc", lambda: GrpcClient(srv.target)),
                ]
                for c in levels:
                    base: tuple[float, float, float] | None = None
                    for door, make in doors:
                        if progress:
                            progress(f"N={n:,}: {door} at concurrency {c}")
                        for run_id in runs[:c]:
                            library.restore(run_id, snapshot)
                        p50, p99, rate = _measure(make, runs[:c], n, size, steps, 1, seed)
                        if base is None:
                            base = (p50, p99, rate)
                        rows.append(
                            ServiceRow(door, c, p50 * 1e3, p99 * 1e3, rate, base[0] * 1e3, base[2])
                        )
            store.client.flushdb()
        store.close()
    report(rows, sizes, batch, steps, out)
    return rows


def report(rows: list[ServiceRow], sizes: list[int], batch: int, steps: int, out: TextIO) -> None:
    print(
        f"cdas bench service: full steps (next_batch of {batch} + report_results of {batch}) on "
        f"Redis, N = {', '.join(f'{n:,}' for n in sizes)};\n{steps} timed steps per trainer; "
        "each trainer steps its own run; times in ms\n",
        file=out,
    )
    columns = [
        ("door", 8),
        ("trainers", 8),
        ("p50", 7),
        ("p99", 7),
        ("steps/s", 8),
        ("p50 vs library", 14),
        ("steps/s vs library", 18),
    ]
    cells = [
        [
            r.door,
            str(r.concurrency),
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.steps_per_s:.1f}",
            f"{r.p50_ms / r.base_p50_ms:.2f}x",
            f"{r.steps_per_s / r.base_steps_per_s:.2f}x",
        ]
        for r in rows
    ]
    table(columns, cells, out)
    print(
        "\nlibrary: cdas.Coordinator(RedisStore) in the load generator's process (threads); "
        "rest, grpc: the SDK\nclients against one `cdas serve --store redis://...` process on the "
        "same Redis\n",
        file=out,
    )
    for line in targets(rows):
        print(line, file=out)


def targets(rows: list[ServiceRow]) -> list[str]:
    lines = []
    by = {(r.door, r.concurrency): r for r in rows}
    if ("rest", 1) in by:
        r = by[("rest", 1)]
        lines.append(
            target(f"REST p50 at concurrency 1 <= 10 ms: {r.p50_ms:.2f} ms", r.p50_ms <= 10)
        )
    top = max((r.concurrency for r in rows), default=0)
    if top >= 16:
        for door in ("rest", "grpc"):
            r = by[(door, top)]
            lines.append(
                target(
                    f"{door} at concurrency {top}: >= 100 steps/s: {r.steps_per_s:.1f}",
                    r.steps_per_s >= 100,
                )
            )
            lines.append(
                target(
                    f"{door} at concurrency {top}: p99 <= 250 ms: {r.p99_ms:.1f} ms",
                    r.p99_ms <= 250,
                )
            )
    for c in sorted({r.concurrency for r in rows}):
        if ("rest", c) in by and ("grpc", c) in by:
            rest, grpc = by[("rest", c)], by[("grpc", c)]
            lines.append(
                target(
                    f"gRPC no slower than REST at concurrency {c}: {grpc.steps_per_s:.1f} vs "
                    f"{rest.steps_per_s:.1f} steps/s",
                    grpc.steps_per_s >= rest.steps_per_s * 0.97,
                )
            )
    return lines
