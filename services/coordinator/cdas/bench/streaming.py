"""``cdas bench service``'s streaming part: 64 writers posting single groups into one run, and
into 16 runs, on Redis: through the library, and through one and two ``cdas serve`` replicas over
REST and gRPC, in the same run.

Async RL posts each group as soon as it is graded, so this is the write path's worst case: many
connections, one group (one result) per call, all on the same run. Setup: one run per target is
restored from the service benchmark's post-warm-up snapshot; for each door, ``steps`` fresh
steps of B prompts are issued per run, one step at a time (through the library; not timed), and
each step's B results per run are posted one group per call by ``writers`` threads, round-robin
over a shuffled order (runs interleaved), all released at once; the next step is issued once
they are all in. (Steps issued together would share prompts, CDAS choosing the same ones at the
same competence, and then the order of a prompt's updates across steps would decide the state.)
Figure: reports per second over the timed windows; the ratio to the library with group commit
(``cdas.store.group_commit``) on the same Redis, and, as the baseline of what group commit buys,
the library with one transaction per report (what every report cost before it: concurrent
writers conflict on the run's version and retry).

Exactness is checked, not assumed: after all doors, each run's whole logical state (the snapshot,
array by array) is compared with a replay on the memory store that applies each step's results
in one call, and every post must have been applied exactly once (no duplicates posted here).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import numpy as np

import cdas
from cdas.bench.core import Pupils, _results
from cdas.bench.report import table, target
from cdas.client import GrpcClient, RestClient
from cdas.core import snapshot as snapshot_format
from cdas.core.engine import RunEngine
from cdas.core.errors import StoreUnavailableError
from cdas.core.results import parse_results
from cdas.core.views import ReportOutcome
from cdas.store.base import Operation

WRITERS = 64
TARGET_PER_S = 5000.0
"""Issue 18: >= 5,000 single-group reports/s into one run from 64 writers through one replica."""


class Reporter(Protocol):
    def report_results(self, run_id: str, step: int, results: Any) -> ReportOutcome: ...


Post = tuple[str, int, dict[str, Any]]
"""(run, step, one group's result)."""


@dataclass
class StreamRow:
    door: str
    replicas: int
    runs: int
    reports: int
    seconds: float
    base_per_s: float
    transactions: int | None = None

    @property
    def per_s(self) -> float:
        return self.reports / self.seconds


class OneTransactionEach:
    """The library without group commit: each report its own store transaction (the path every
    report took before ``GroupCommit``), for the baseline row."""

    def __init__(self, store: cdas.Store) -> None:
        self.store = store

    def report_results(self, run_id: str, step: int, results: Any) -> ReportOutcome:
        parsed = parse_results(results)

        def body(engine: RunEngine) -> ReportOutcome:
            return engine.report_results(step, parsed)

        return self.store.transact(run_id, Operation("report_results", body, step))


def _write(clients: list[Reporter], posts: list[Post], writers: int) -> float:
    """Seconds for ``writers`` threads (writer k uses ``clients[k % len]``) to post ``posts``
    one group per call; raises if any post was not applied exactly once. A post the store
    answered busy (``StoreUnavailableError``: its run changed under it too often, which one
    transaction per report can reach) is posted again, as the SDK's retry would."""
    start = threading.Barrier(writers + 1)
    failures: list[str] = []

    def work(k: int) -> None:
        client = clients[k % len(clients)]
        start.wait()
        for i in range(k, len(posts), writers):
            run, step, result = posts[i]
            applied = 0
            for _ in range(10):
                try:
                    outcome = client.report_results(run, step, [result])
                except StoreUnavailableError:
                    continue
                except cdas.CdasError as exc:
                    failures.append(f"{run} step {step} {result['prompt_id']}: {exc}")
                    break
                applied += outcome.applied
                break
            if applied != 1:
                failures.append(f"{run} step {step} {result['prompt_id']}: applied {applied}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{len(failures)} posts not applied once, first: {failures[0]}")
    return seconds


def _posts(
    library: cdas.Coordinator,
    runs: list[str],
    pupils: dict[str, Pupils],
    first: int,
    steps: int,
    size: int,
    seed: int,
    issued: dict[str, list[tuple[int, list[dict[str, Any]]]]],
) -> list[Post]:
    """Issue steps ``first``.. of every run and make their results, shuffled into posts."""
    posts: list[Post] = []
    for run in runs:
        for step in range(first, first + steps):
            batch = library.next_batch(run, step, size)
            idx = np.array(batch.prompt_ids, dtype=np.int64)
            results = _results(batch.prompt_ids, pupils[run].correct(idx))
            issued[run].append((step, results))
            posts += [(run, step, r) for r in results]
    order = np.random.default_rng(seed + first).permutation(len(posts))
    return [posts[i] for i in order]


def _replayed_equal(
    library: cdas.Coordinator,
    run: str,
    snapshot: bytes,
    issued: list[tuple[int, list[dict[str, Any]]]],
) -> bool:
    """Whether ``run`` on Redis holds exactly the state of its issued steps' results applied in
    one call each, replayed on the memory store from the same snapshot."""
    replay = cdas.Coordinator(cdas.MemoryStore())
    replay.restore(run, snapshot)
    size = len(issued[0][1])
    for step, results in issued:
        replay.next_batch(run, step, size)
        replay.report_results(run, step, results)
    meta_a, arrays_a = snapshot_format.decode(library.snapshot(run))
    meta_b, arrays_b = snapshot_format.decode(replay.snapshot(run))
    return bool(
        meta_a == meta_b
        and arrays_a.keys() == arrays_b.keys()
        and all(np.array_equal(arrays_a[k], arrays_b[k]) for k in arrays_a)
    )


def run(
    where: str,
    library: cdas.Coordinator,
    snapshot: bytes,
    n: int,
    size: int,
    seed: int,
    servers: list[Any],
    steps: int = 4,
    run_counts: tuple[int, ...] = (1, 16),
    writers: int = WRITERS,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[StreamRow], bool]:
    """Every row, and whether every run ended identical to its replay. ``servers``: two running
    ``cdas serve`` processes on ``where`` (``.url``, ``.target``)."""
    rows: list[StreamRow] = []
    identical = True
    for count in run_counts:
        runs = [f"stream-{count}-{k}" for k in range(count)]
        for run_id in runs:
            library.restore(run_id, snapshot)
        pupils = {run_id: Pupils(n, seed + k) for k, run_id in enumerate(runs)}
        issued: dict[str, list[tuple[int, list[dict[str, Any]]]]] = {r: [] for r in runs}
        per_door = max(1, steps // count)
        second = cdas.Coordinator(cdas.RedisStore(where))
        pair: list[Reporter] = [library, second]
        doors: list[tuple[str, int, Callable[[], list[Reporter]]]] = [
            ("library", 1, lambda: [library]),
            ("library", 2, pair.copy),
            ("one txn each", 1, lambda: [OneTransactionEach(library.store)]),
            ("rest", 1, lambda: [RestClient(servers[0].url) for _ in range(writers)]),
            ("rest", 2, lambda: [RestClient(s.url) for _ in range(writers // 2) for s in servers]),
            ("grpc", 1, lambda: [GrpcClient(servers[0].target) for _ in range(writers)]),
            (
                "grpc",
                2,
                lambda: [GrpcClient(s.target) for _ in range(writers // 2) for s in servers],
            ),
        ]
        base = 0.0
        first = 1
        for door, replicas, make in doors:
            if progress:
                progress(f"streaming into {count} run(s): {door} x{replicas}")
            clients = make()
            before = library.commits.transactions + second.commits.transactions
            seconds, reports = 0.0, 0
            for _ in range(per_door):  # a step's results all in before the next step is issued
                posts = _posts(library, runs, pupils, first, 1, size, seed, issued)
                first += 1
                seconds += _write(clients, posts, writers)
                reports += len(posts)
            for client in clients:
                close = getattr(client, "close", None)
                if close is not None and client not in (library, second):
                    close()
            txns = None
            if door == "library":
                txns = library.commits.transactions + second.commits.transactions - before
            row = StreamRow(door, replicas, count, reports, seconds, base, txns)
            if door == "library" and replicas == 1:
                base = row.per_s
                row.base_per_s = base
            rows.append(row)
        second.store.close()  # type: ignore[attr-defined]
        if progress:
            progress(f"streaming into {count} run(s): comparing every run with its replay")
        for run_id in runs:
            identical &= _replayed_equal(library, run_id, snapshot, issued[run_id])
            library.delete_run(run_id)
    return rows, identical


def report(rows: list[StreamRow], identical: bool, size: int, out: TextIO) -> None:
    print(
        f"\nstreamed results: {WRITERS} writers posting single groups (one result per call) into "
        f"1 and 16 runs on Redis,\nsteps of B = {size} issued per run; reports/s over the timed "
        "window\n",
        file=out,
    )
    columns = [
        ("door", 12),
        ("replicas", 8),
        ("runs", 4),
        ("reports", 7),
        ("reports/s", 9),
        ("vs library", 10),
        ("reports/txn", 11),
    ]
    cells = [
        [
            r.door,
            str(r.replicas),
            str(r.runs),
            str(r.reports),
            f"{r.per_s:.0f}",
            f"{r.per_s / r.base_per_s:.2f}x",
            "-" if not r.transactions else f"{r.reports / r.transactions:.1f}",
        ]
        for r in rows
    ]
    table(columns, cells, out)
    print(
        "\nlibrary: cdas.Coordinator(RedisStore) in this process, group commit on (x2: two "
        "coordinators, each its own\nRedisStore: two replicas); one txn each: the library with one "
        "store transaction per report (the path\nbefore group commit); rest, grpc: the SDK "
        "clients against `cdas serve --store redis://...` (x2: two\nprocesses, writers split "
        "between them)\n",
        file=out,
    )
    for line in stream_targets(rows, identical):
        print(line, file=out)


def stream_targets(rows: list[StreamRow], identical: bool) -> list[str]:
    lines = [target("every run ends identical to its results applied in one call", identical)]
    for r in rows:
        if r.door in ("rest", "grpc") and r.runs == 1:
            lines.append(
                target(
                    f"{r.door} x{r.replicas} into one run: >= {TARGET_PER_S:,.0f} reports/s: "
                    f"{r.per_s:,.0f}",
                    r.per_s >= TARGET_PER_S,
                )
            )
    return lines
