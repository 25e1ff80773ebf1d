"""``cdas bench metrics``: what observing costs. Each part is timed against a baseline measured in
the same run.

1. **A training step with and without the metrics observer.** The step is ``next_batch`` of B and
   then ``report_results`` of the B groups (building the result dicts is not timed), through the
   library on the embedded store. Both
   coordinators share one store, with one run each, and their steps alternate so that machine
   noise hits both alike.
2. **Counting one report's groups.** The vectorized tallies (``RunTallies.add``) are timed against
   feeding the same B difficulties and pass rates to ``prometheus_client`` histograms one value
   at a time, as a naive instrumentation would.
3. **One scrape of ``/metrics``'s text** (``Metrics.exposition``) over R runs of N prompts each,
   every run with a history. The baseline is one training step.

Targets:
* the observer adds at most 5% to a step;
* the tallies are at least 10x faster than per-value observation;
* a scrape of 16 runs takes under 150 ms, 1% of Prometheus's default 15 s interval. It is nearly
  all ``prometheus_client`` writing about 200 lines per run; the ratio to a step is printed for
  scale.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

import cdas
from cdas.bench.core import Pupils, _results
from cdas.bench.report import table, target
from cdas.core.views import AppliedGroups, ReportOutcome
from cdas.observe.metrics import (
    DIFFICULTY_BINS,
    DIFFICULTY_BUCKETS,
    PASS_RATE_BUCKETS,
    Metrics,
    RunTallies,
)


@dataclass
class Result:
    step_ms: float
    observed_step_ms: float
    tallies_us: float
    per_value_us: float
    scrape_ms: float
    scrape_bytes: int
    runs: int


def _groups(pupils: Pupils, ids: list[str]) -> list[dict[str, Any]]:
    return _results(ids, pupils.correct(np.array(ids, dtype=np.int64)))


def _step_pair(
    n: int, batch: int, steps: int, seed: int
) -> tuple[list[float], list[float], Metrics]:
    """Alternating steps of two runs on one store: one coordinator plain, one observed."""
    store = cdas.MemoryStore()
    plain = cdas.Coordinator(store)
    metrics = Metrics(CollectorRegistry(), store)
    observed = cdas.Coordinator(store, observers=[metrics])
    pupils = Pupils(n, seed)
    times: dict[str, list[float]] = {"plain": [], "observed": []}
    for name, c in (("plain", plain), ("observed", observed)):
        c.put_run(name, "cdas", seed=seed, prompts=n)
    warm = -(-n // batch)  # one epoch: every prompt gets a difficulty
    for step in range(warm + steps):
        for name, c in (("plain", plain), ("observed", observed)):
            t0 = time.perf_counter()
            ids = c.next_batch(name, step, batch).prompt_ids
            t1 = time.perf_counter()
            results = _groups(pupils, ids)  # building the results is not timed
            t2 = time.perf_counter()
            c.report_results(name, step, results)
            t3 = time.perf_counter()
            if step >= warm:
                times[name].append((t1 - t0 + t3 - t2) * 1e3)
        pupils.ability += 0.01
    return times["plain"], times["observed"], metrics


def _tallies_vs_per_value(batch: int, repeats: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    d = rng.uniform(-0.6, 0.6, batch)
    passes = rng.integers(0, 9, batch) / 8.0
    groups = AppliedGroups(
        d, np.ones(batch, dtype=np.int32), passes, np.full(batch, 8), (passes == 0) | (passes == 1)
    )
    outcome = ReportOutcome(batch, 0, 0.0, groups)
    tallies = RunTallies()
    registry = CollectorRegistry()
    by_difficulty = Histogram(
        "d", "", ["run"], buckets=DIFFICULTY_BUCKETS, registry=registry
    ).labels("r")
    pass_rate = Histogram(
        "p", "", ["run", "difficulty"], buckets=PASS_RATE_BUCKETS, registry=registry
    )
    bins = [DIFFICULTY_BINS[min(int((x + 1) / 0.2), 9)] for x in d]
    fast, slow = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        tallies.add(outcome)
        fast.append((time.perf_counter() - started) * 1e6)
        started = time.perf_counter()
        for x, p, label in zip(d, passes, bins, strict=True):
            by_difficulty.observe(x)
            pass_rate.labels("r", label).observe(p)
        slow.append((time.perf_counter() - started) * 1e6)
    return statistics.median(fast), statistics.median(slow)


def _scrape(n: int, runs: int, batch: int, steps: int, seed: int) -> tuple[float, int]:
    store = cdas.MemoryStore()
    metrics = Metrics(CollectorRegistry(), store)
    c = cdas.Coordinator(store, observers=[metrics])
    pupils = Pupils(n, seed)
    for r in range(runs):
        run_id = f"run-{r}"
        c.put_run(run_id, "cdas", seed=seed + r, prompts=n)
        for step in range(steps):
            ids = c.next_batch(run_id, step, batch).prompt_ids
            c.report_results(run_id, step, _groups(pupils, ids))
    timings, size = [], 0
    for _ in range(20):
        started = time.perf_counter()
        text, _type = metrics.exposition()
        timings.append((time.perf_counter() - started) * 1e3)
        size = len(text)
    return statistics.median(timings), size


def run(
    n: int,
    batch: int,
    steps: int,
    runs: int,
    seed: int,
    out: TextIO | None = None,
    progress: Callable[[str], None] | None = None,
) -> Result:
    import sys

    out = out or sys.stdout
    if progress:
        progress(f"N={n:,}: steps with and without the observer")
    plain, observed, _metrics = _step_pair(n, batch, steps, seed)
    if progress:
        progress("tallies against per-value observation")
    fast, slow = _tallies_vs_per_value(batch, 200, seed)
    if progress:
        progress(f"{runs} runs: scrapes")
    scrape_ms, scrape_bytes = _scrape(n, runs, batch, 8, seed)
    result = Result(
        step_ms=statistics.median(plain),
        observed_step_ms=statistics.median(observed),
        tallies_us=fast,
        per_value_us=slow,
        scrape_ms=scrape_ms,
        scrape_bytes=scrape_bytes,
        runs=runs,
    )
    print(
        f"\ncdas bench metrics: N = {n:,}, B = {batch}, {steps} steps (medians; the library on "
        "the embedded store)\n",
        file=out,
    )
    table(
        [("what", 44), ("measured", 12), ("baseline", 12), ("ratio", 8)],
        [
            (
                "step with the metrics observer (ms)",
                f"{result.observed_step_ms:.3f}",
                f"{result.step_ms:.3f}",
                f"{result.observed_step_ms / result.step_ms:.3f}x",
            ),
            (
                f"count {batch} groups: tallies vs per-value (us)",
                f"{result.tallies_us:.1f}",
                f"{result.per_value_us:.1f}",
                f"{result.tallies_us / result.per_value_us:.3f}x",
            ),
            (
                f"scrape of {runs} runs vs one step (ms)",
                f"{result.scrape_ms:.3f}",
                f"{result.step_ms:.3f}",
                f"{result.scrape_ms / result.step_ms:.3f}x",
            ),
        ],
        out,
    )
    print(f"\n(a scrape of {runs} runs is {result.scrape_bytes:,} bytes of text)\n", file=out)
    for line in targets(result):
        print(line, file=out)
    return result


def targets(result: Result) -> list[str]:
    overhead = result.observed_step_ms / result.step_ms
    speedup = result.per_value_us / result.tallies_us
    return [
        target(
            f"the observer adds {100 * (overhead - 1):+.1f}% to a step (<= 5%)", overhead <= 1.05
        ),
        target(f"tallies {speedup:.0f}x faster than per-value observation (>= 10x)", speedup >= 10),
        target(
            f"a scrape of {result.runs} runs takes {result.scrape_ms:.1f} ms (< 150 ms: 1% of "
            "Prometheus's default 15 s interval)",
            result.scrape_ms < 150,
        ),
    ]
