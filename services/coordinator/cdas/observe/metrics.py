"""Prometheus metrics of one coordinator process, in a registry the caller injects.

Two kinds, as Prometheus wants them:

* **Read from the store at scrape time** (``StoreCollector``): per run, competence, step, size,
  prompts seen, mean difficulty and the distribution of D (a gauge histogram), plus the store's
  health. Every replica reports the same values; dashboards take ``max by (run)``. A scrape costs
  one listing of the run ids and one history-free state per run: O(runs), never O(prompts).
* **Counted when things happen** (``RunTallies``, request metrics): per run, results applied,
  duplicates, zero-gradient groups, rollouts, and histograms of the applied groups' difficulty and
  pass rate (by difficulty bin: the paper's Figure 6); per transport and operation, request
  latency and errors by the contract's error code. Per process: dashboards ``sum`` over replicas.

Metrics observe; they never steer: the coordinator calls ``results_reported`` after the store
committed a report (so a retried commit is counted once, and duplicates are counted as such), and
the doors call ``request`` once per request.

The applied groups' histograms are kept as numpy arrays per run and binned with one
``searchsorted`` per report, O(B) vectorized: a report of 1024 groups costs tens of microseconds,
where 2048 ``Histogram.observe`` calls would cost milliseconds on the hot path.

The names, units and labels are listed in ``docs/metrics.md``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client import Histogram as PromHistogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

import cdas
from cdas.core.errors import CdasError
from cdas.core.views import ReportOutcome, RunState
from cdas.observe.health import Health
from cdas.store.base import Operation, Store

PREFIX = "cdas"

_CURRENT_STATE = Operation("get_state", lambda engine: engine.state(0, history=False))
"""A run's state without its history: what a scrape reads of each run, O(1) in its size."""

OPERATIONS = frozenset(
    {
        "put_run",
        "get_run",
        "list_runs",
        "delete_run",
        "add_prompts",
        "next_batch",
        "report_results",
        "advance",
        "get_prompt",
        "get_state",
        "snapshot",
        "restore",
        "export_prompts",
    }
)
"""The ``operation`` label: the library's method names, shared by REST and gRPC."""

DIFFICULTY_BUCKETS = tuple(round(-0.9 + 0.1 * k, 1) for k in range(20))
"""``cdas_batch_difficulty`` upper bounds: -0.9, -0.8, ..., 0.9, 1.0 (D lies in [-1, 1])."""

PASS_RATE_BUCKETS = tuple(k / 8 for k in range(9))
"""``cdas_batch_pass_rate`` upper bounds: 0, 1/8, ..., 1 (G = 8 rollouts land on them exactly)."""

DIFFICULTY_BINS = (*(f"{-0.9 + 0.2 * k:.1f}" for k in range(10)), "none")
"""``difficulty`` label of ``cdas_batch_pass_rate``: the centre of one of 10 bins of D of width
0.2 over [-1, 1], or ``none`` for a prompt's first result (it had no difficulty yet)."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def grpc_operation(method: str) -> str:
    """``"ReportResults"`` or ``"/cdas.v1.Coordinator/ReportResults"`` -> ``"report_results"``."""
    name = method.rsplit("/", 1)[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _le(bound: float) -> str:
    """A bucket's ``le`` label: the bound to 6 decimals (linspace edges carry float noise)."""
    return "+Inf" if bound == float("inf") else repr(round(float(bound), 6))


@dataclass
class RunTallies:
    """One run's event counts in this process. Mutated under ``Metrics``'s lock."""

    applied: int = 0
    duplicates: int = 0
    zero_gradient: int = 0
    rollouts: int = 0
    difficulty_counts: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(len(DIFFICULTY_BUCKETS) + 1, dtype=np.int64)
    )
    pass_counts: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(
            (len(DIFFICULTY_BINS), len(PASS_RATE_BUCKETS) + 1), dtype=np.int64
        )
    )
    pass_sums: npt.NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(len(DIFFICULTY_BINS))
    )
    since: int = 0  # ``Metrics``'s creation sequence number when the run was first counted

    def add(self, outcome: ReportOutcome) -> None:
        """Count one committed report. O(B) with numpy."""
        self.applied += outcome.applied
        self.duplicates += outcome.duplicates
        groups = outcome.groups
        if groups is None or groups.pass_rate.size == 0:
            return
        self.zero_gradient += int(groups.zero_gradient.sum())
        self.rollouts += int(groups.total.sum())
        known = groups.updates > 0
        d = groups.difficulty
        self.difficulty_counts += np.bincount(
            np.searchsorted(DIFFICULTY_BUCKETS, d[known], side="left"),
            minlength=self.difficulty_counts.size,
        )
        rows = np.where(
            known,
            np.clip(((d + 1.0) / 0.2).astype(np.int64), 0, len(DIFFICULTY_BINS) - 2),
            len(DIFFICULTY_BINS) - 1,
        )
        cols = np.searchsorted(PASS_RATE_BUCKETS, groups.pass_rate, side="left")
        width = self.pass_counts.shape[1]
        self.pass_counts += np.bincount(
            rows * width + cols, minlength=self.pass_counts.size
        ).reshape(self.pass_counts.shape)
        self.pass_sums += np.bincount(
            rows, weights=groups.pass_rate, minlength=len(DIFFICULTY_BINS)
        )


def _cumulative(
    bounds: tuple[float, ...], counts: npt.NDArray[np.int64]
) -> list[tuple[str, float]]:
    total = np.cumsum(counts)
    return [(_le(b), float(c)) for b, c in zip((*bounds, float("inf")), total, strict=True)]


class Metrics:
    """The process's metrics; see the module docstring. ``registry`` is injected: the service
    gives each instance its own, so two services in one process (tests) never share counts."""

    def __init__(
        self,
        registry: CollectorRegistry,
        store: Store,
        health: Health | None = None,
        per_run: bool = True,
    ) -> None:
        """``per_run`` False drops every series labelled by run (ids, competence, steps, the
        tallies): a deployment shared by several teams then shows only the request metrics,
        the store's health and the number of runs."""
        self.registry = registry
        self.per_run = per_run
        self._lock = threading.Lock()
        self._runs: dict[str, RunTallies] = {}
        self._created = 0  # tallies created so far: orders them against a scrape's listing
        self.latency = PromHistogram(
            f"{PREFIX}_request_duration_seconds",
            "Time to answer one request, errors included (_count: the requests).",
            ["transport", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            f"{PREFIX}_request_errors",
            "Requests answered with an error, by the contract's error code.",
            ["transport", "operation", "code"],
            registry=registry,
        )
        # the store's gauges first: their listing of the runs prunes the tallies of deleted runs
        # before the same scrape exposes the tallies
        registry.register(StoreCollector(store, health, self, per_run=per_run))
        if per_run:
            registry.register(_TallyCollector(self))

    # ------------------------------------------------------------------ the coordinator's observer
    def results_reported(self, run_id: str, outcome: ReportOutcome) -> None:
        if not self.per_run:
            return
        with self._lock:
            tallies = self._runs.get(run_id)
            if tallies is None:
                self._created += 1
                tallies = self._runs[run_id] = RunTallies(since=self._created)
            tallies.add(outcome)

    def run_deleted(self, run_id: str) -> None:
        """Forget the run's series (a deleted run leaves no stale lines on dashboards)."""
        with self._lock:
            self._runs.pop(run_id, None)

    def mark(self) -> int:
        """Taken before a scrape lists the store's runs: see ``forget_unlisted``."""
        with self._lock:
            return self._created

    def forget_unlisted(self, mark: int, listed: set[str]) -> None:
        """Forget the runs counted before ``mark`` that the store no longer lists: deleted
        through another replica, which this process's ``run_deleted`` never heard of. A run first
        counted after the mark may be newer than the listing, so it stays."""
        with self._lock:
            for run_id in [r for r, t in self._runs.items() if t.since <= mark]:
                if run_id not in listed:
                    del self._runs[run_id]

    # ------------------------------------------------------------------ the doors
    def request(
        self, transport: str, operation: str, seconds: float, code: str | None = None
    ) -> None:
        """One request answered (``code``: the error code, None when it succeeded)."""
        self.latency.labels(transport, operation).observe(seconds)
        if code is not None:
            self.errors.labels(transport, operation, code).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text format of everything in the registry, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def snapshot_runs(self) -> dict[str, RunTallies]:
        """A consistent copy of the per-run tallies (what one scrape exposes)."""
        with self._lock:
            return {
                run_id: RunTallies(
                    t.applied,
                    t.duplicates,
                    t.zero_gradient,
                    t.rollouts,
                    t.difficulty_counts.copy(),
                    t.pass_counts.copy(),
                    t.pass_sums.copy(),
                    t.since,
                )
                for run_id, t in self._runs.items()
            }


class _TallyCollector(Collector):
    """Exposes ``Metrics``'s per-run tallies as counters and histograms."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        runs = self.metrics.snapshot_runs()
        counters = {
            "applied": CounterMetricFamily(
                f"{PREFIX}_results_applied", "Group results applied.", labels=["run"]
            ),
            "duplicates": CounterMetricFamily(
                f"{PREFIX}_results_duplicate",
                "Results ignored as duplicates of ones already applied (retries).",
                labels=["run"],
            ),
            "zero_gradient": CounterMetricFamily(
                f"{PREFIX}_zero_gradient_groups",
                "Applied groups whose rewards had zero variance (all right or all wrong): no "
                "gradient.",
                labels=["run"],
            ),
            "rollouts": CounterMetricFamily(
                f"{PREFIX}_rollouts", "Rollouts in the applied groups.", labels=["run"]
            ),
        }
        difficulty = HistogramMetricFamily(
            f"{PREFIX}_batch_difficulty",
            "Difficulty D of each applied group's prompt when it was trained (before the update; "
            "prompts with an earlier result only).",
            labels=["run"],
        )
        pass_rate = HistogramMetricFamily(
            f"{PREFIX}_batch_pass_rate",
            "Pass rate of each applied group, by the bin of its prompt's difficulty when trained "
            "(centre, width 0.2; none: the prompt's first result).",
            labels=["run", "difficulty"],
        )
        for run_id, t in sorted(runs.items()):
            for name, family in counters.items():
                family.add_metric([run_id], getattr(t, name))
            # No _sum/_count: OpenMetrics forbids them on a histogram with negative buckets
            # (prometheus_client drops them); the count is the +Inf bucket.
            difficulty.add_metric(
                [run_id], _cumulative(DIFFICULTY_BUCKETS, t.difficulty_counts), sum_value=None
            )
            for k, label in enumerate(DIFFICULTY_BINS):
                pass_rate.add_metric(
                    [run_id, label],
                    _cumulative(PASS_RATE_BUCKETS, t.pass_counts[k]),
                    float(t.pass_sums[k]),
                )
        yield from counters.values()
        yield difficulty
        yield pass_rate


class StoreCollector(Collector):
    """Gauges read from the store at scrape time: the runs' current values and store health.

    When the store does not answer, ``cdas_store_up`` is 0 and the run gauges are left out (a
    scrape never fails because the store does). With ``metrics``, each listing of the runs also
    prunes the tallies of runs deleted elsewhere (``Metrics.forget_unlisted``)."""

    def __init__(
        self,
        store: Store,
        health: Health | None = None,
        metrics: Metrics | None = None,
        per_run: bool = True,
    ) -> None:
        self.store = store
        self.health = health
        self.metrics = metrics
        self.per_run = per_run
        self.store_name = type(store).__name__.removesuffix("Store").lower() or "custom"

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            f"{PREFIX}_build_info",
            "The coordinator's version and store.",
            labels=["version", "store"],
        )
        info.add_metric([cdas.__version__, self.store_name], 1)
        yield info
        started = time.perf_counter()
        try:
            self.store.ping()
            up = True
        except CdasError:
            up = False
        ping = time.perf_counter() - started
        yield GaugeMetricFamily(
            f"{PREFIX}_store_up", "1 when the store answered a ping during this scrape.", value=up
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_store_ping_seconds", "How long this scrape's store ping took.", value=ping
        )
        draining = self.health is not None and self.health.draining
        yield GaugeMetricFamily(
            f"{PREFIX}_ready",
            "1 when /readyz answers 200: the store answers and the service is not draining.",
            value=up and not draining,
        )
        if up and self.per_run:
            yield from self._runs()
        elif up:
            try:
                count = len(self.store.run_ids())
            except CdasError:
                return
            yield GaugeMetricFamily(f"{PREFIX}_runs", "Runs in the store.", value=count)

    def _states(self) -> list[RunState]:
        states = []
        mark = self.metrics.mark() if self.metrics is not None else 0
        try:
            run_ids = self.store.run_ids()
        except CdasError:
            return []
        if self.metrics is not None:
            self.metrics.forget_unlisted(mark, set(run_ids))
        for run_id in run_ids:
            try:
                states.append(self.store.transact(run_id, _CURRENT_STATE))
            except CdasError:  # deleted since the listing, or the store went away
                continue
        return states

    def _runs(self) -> Iterator[Metric]:
        states = self._states()
        yield GaugeMetricFamily(f"{PREFIX}_runs", "Runs in the store.", value=len(states))
        labels = ["run"]
        run_info = GaugeMetricFamily(
            f"{PREFIX}_run_info", "1 per run, with its strategy.", labels=["run", "strategy"]
        )
        competence = GaugeMetricFamily(
            f"{PREFIX}_run_competence", "Competence C = -mean D over all prompts.", labels=labels
        )
        step = GaugeMetricFamily(f"{PREFIX}_run_step", "Latest step of the run.", labels=labels)
        size = GaugeMetricFamily(f"{PREFIX}_run_prompts", "Prompts registered.", labels=labels)
        seen = GaugeMetricFamily(
            f"{PREFIX}_run_prompts_seen", "Prompts with at least one result.", labels=labels
        )
        retired = GaugeMetricFamily(
            f"{PREFIX}_run_prompts_retired",
            "Prompts kept out of selection (cdas retire_after: zero-gradient streaks), else 0.",
            labels=labels,
        )
        mean = GaugeMetricFamily(
            f"{PREFIX}_run_difficulty_mean",
            "Mean difficulty D over the prompts with results (-C * N / seen).",
            labels=labels,
        )
        distribution = GaugeHistogramMetricFamily(
            f"{PREFIX}_run_prompt_difficulty",
            "Current distribution of D over the prompts with results (40 bins of 0.05).",
            labels=labels,
        )
        for state in states:
            run = [state.run_id]
            run_info.add_metric([state.run_id, state.strategy], 1)
            competence.add_metric(run, state.competence)
            size.add_metric(run, state.size)
            seen.add_metric(run, state.seen)
            retired.add_metric(run, state.retired)
            if state.step is not None:
                step.add_metric(run, state.step)
            if state.seen:
                mean.add_metric(run, -state.competence * state.size / state.seen)
            # upper edges -0.95 .. 1 (the last bin is closed at 1), then +Inf with nothing more
            counts = np.asarray([*state.histogram_counts, 0], dtype=np.int64)
            distribution.add_metric(
                run,
                _cumulative(tuple(state.histogram_edges[1:]), counts),
                gsum_value=-state.competence * state.size,
            )
        yield from (run_info, competence, step, size, seen, retired, mean, distribution)
