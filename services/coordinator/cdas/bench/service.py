"""``cdas bench service``: full training steps through the service, over REST and gRPC, on Redis,
against the in-process library on the same Redis, in the same run.

A full step is what a trainer does each step: ``next_batch`` of B = 1024, then
``report_results`` of the B groups. Setup: one run of N prompts is registered and brought to a
post-warm-up state (a result for every prompt), snapshotted, and restored under one run id per
trainer, so every trainer starts from the same state. The service is a real ``cdas serve``
process (``--store redis://...``); the load generator is this process: ``c`` trainer threads,
each stepping its own run (a training run's steps are sequential; concurrency is many runs).

Each door steps two ways: with the step's two calls (``next_batch``, ``report_results``), and
with the one-call step (``advance``: step n's results and step n + 1's batch in one call and one
store transaction). Per door, way and concurrency: p50 and p99 of the step (the calls, excluding
the trainer's own work of making results) and steps per second over the whole timed window; the
ratio of each to the library's, the same way, on the same store.

Targets, on a 2-core machine with the load generator on it. Issue 4 (two calls): at c = 1, REST
p50 <= 10 ms; at c = 16, >= 100 steps/s and p99 <= 250 ms; gRPC no slower than REST (steps/s).
Issue 18 (one call): at c = 1, REST p50 <= 10 ms and gRPC p50 <= 8 ms; at c = 16, >= 150
steps/s.
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
from cdas.bench import streaming
from cdas.bench.core import Pupils, _results
from cdas.bench.redis_store import _given, _load, private_redis
from cdas.bench.report import table, target
from cdas.client import GrpcClient, RestClient
from cdas.core.api import Batches
from cdas.service.process import serve_process

Trainer = Batches
"""What the load generator calls: a step's two calls (``cdas.core.api``)."""


TWO_CALLS, ONE_CALL = "2 calls", "1 call"


@dataclass
class ServiceRow:
    door: str
    way: str
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
    way: str = TWO_CALLS,
) -> None:
    """``steps`` steps from ``first``. The one-call way asks for step ``first``'s batch before
    the timed steps (the step before them answered it) and gets each next batch with the
    step's results, so it leaves step ``first + steps`` issued."""
    batch = client.next_batch(run, first, size) if way == ONE_CALL else None
    start.wait()
    for step in range(first, first + steps):
        t0 = time.perf_counter()
        if batch is None:
            batch = client.next_batch(run, step, size)
        t1 = time.perf_counter()
        results = _results(
            batch.prompt_ids, pupils.correct(np.array(batch.prompt_ids, dtype=np.int64))
        )
        t2 = time.perf_counter()
        if way == ONE_CALL:
            batch = client.advance(run, step, results, size).batch
        else:
            client.report_results(run, step, results)
            batch = None
        times.append((t1 - t0) + (time.perf_counter() - t2))


def _measure(
    make_client: Callable[[], Trainer],
    runs: list[str],
    n: int,
    size: int,
    steps: int,
    first: int,
    seed: int,
    way: str = TWO_CALLS,
) -> tuple[float, float, float]:
    """(p50 s, p99 s, steps/s) with one trainer thread per run, after 5 untimed warm-up steps."""
    clients = [make_client() for _ in runs]
    pupils = [Pupils(n, seed + k) for k in range(len(runs))]
    warm: list[float] = []
    for client, run, p in zip(clients, runs, pupils, strict=True):
        _trainer_loop(client, run, p, size, 5, first, warm, threading.Barrier(1), way)
    times: list[list[float]] = [[] for _ in runs]
    barrier = threading.Barrier(len(runs) + 1)
    threads = [
        threading.Thread(
            target=_trainer_loop,
            args=(clients[k], runs[k], pupils[k], size, steps, first + 5, times[k], barrier, way),
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
    stream_steps: int = 4,
    stream_runs: tuple[int, ...] = (1, 16),
) -> tuple[list[ServiceRow], list[streaming.StreamRow], bool]:
    """The step rows, then (on the first size, when ``stream_steps`` > 0) the streaming rows and
    whether every streamed run ended identical to its replay (``cdas.bench.streaming``)."""
    levels = [int(c) for c in concurrency.split(",") if c]
    rows: list[ServiceRow] = []
    streamed: list[streaming.StreamRow] = []
    identical = True
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
                    for way in (TWO_CALLS, ONE_CALL):
                        base: tuple[float, float, float] | None = None
                        for door, make in doors:
                            if progress:
                                progress(f"N={n:,}: {door}, {way} a step, at concurrency {c}")
                            for run_id in runs[:c]:
                                library.restore(run_id, snapshot)
                            p50, p99, rate = _measure(make, runs[:c], n, size, steps, 1, seed, way)
                            if base is None:
                                base = (p50, p99, rate)
                            rows.append(
                                ServiceRow(
                                    door, way, c, p50 * 1e3, p99 * 1e3, rate, base[0] * 1e3, base[2]
                                )
                            )
                if stream_steps > 0 and n == sizes[0]:
                    with serve_process(
                        "--store", where, "--log-level", "warning", "--grace", "2"
                    ) as replica:
                        streamed, identical = streaming.run(
                            where,
                            library,
                            snapshot,
                            n,
                            size,
                            seed,
                            [srv, replica],
                            stream_steps,
                            stream_runs,
                            progress=progress,
                        )
            store.client.flushdb()
        store.close()
    report(rows, sizes, batch, steps, out)
    if streamed:
        streaming.report(streamed, identical, min(batch, sizes[0]), out)
    return rows, streamed, identical


def report(rows: list[ServiceRow], sizes: list[int], batch: int, steps: int, out: TextIO) -> None:
    print(
        f"cdas bench service: full steps (a batch of {batch} and its {batch} results: next_batch "
        "+ report_results,\nor the one-call advance) on Redis, N = "
        f"{', '.join(f'{n:,}' for n in sizes)}; {steps} timed steps per trainer; each trainer\n"
        "steps its own run; times in ms\n",
        file=out,
    )
    columns = [
        ("door", 8),
        ("step", 7),
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
            r.way.replace(" ", "-"),
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
    """Issue 4's targets on the two-call step, issue 18's on the one-call step."""
    lines = []
    by = {(r.door, r.way, r.concurrency): r for r in rows}
    two, one = TWO_CALLS, ONE_CALL
    if ("rest", two, 1) in by:
        r = by[("rest", two, 1)]
        lines.append(
            target(f"REST p50 at concurrency 1 <= 10 ms: {r.p50_ms:.2f} ms", r.p50_ms <= 10)
        )
    for door, limit in (("rest", 10.0), ("grpc", 8.0)):
        if (door, one, 1) in by:
            r = by[(door, one, 1)]
            lines.append(
                target(
                    f"{door} one-call step p50 at concurrency 1 <= {limit:.0f} ms: "
                    f"{r.p50_ms:.2f} ms",
                    r.p50_ms <= limit,
                )
            )
    top = max((r.concurrency for r in rows), default=0)
    if top >= 16:
        for door in ("rest", "grpc"):
            r = by[(door, two, top)]
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
            r = by[(door, one, top)]
            lines.append(
                target(
                    f"{door} one-call step at concurrency {top}: >= 150 steps/s: "
                    f"{r.steps_per_s:.1f}",
                    r.steps_per_s >= 150,
                )
            )
    for c in sorted({r.concurrency for r in rows}):
        if ("rest", two, c) in by and ("grpc", two, c) in by:
            rest, grpc = by[("rest", two, c)], by[("grpc", two, c)]
            lines.append(
                target(
                    f"gRPC no slower than REST at concurrency {c}: {grpc.steps_per_s:.1f} vs "
                    f"{rest.steps_per_s:.1f} steps/s",
                    grpc.steps_per_s >= rest.steps_per_s * 0.97,
                )
            )
    return lines
