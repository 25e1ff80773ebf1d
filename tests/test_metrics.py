"""``GET /metrics`` against hand-computed values, over real services (REST and gRPC), on the memory
store and a real Redis.

* the tallies of committed reports (applied, duplicates, zero-gradient groups, rollouts, the
  histograms of the difficulty trained at and of the pass rate by difficulty bin) equal what the
  test computes from the results it sent and from ``get_prompt`` before each report;
* the gauges read at scrape time equal the API's values; a deleted run leaves no series;
* request latency and errors are counted per transport, operation and error code;
* a store that is down still gives a 200 scrape, with ``cdas_store_up`` 0;
* each service has its own registry; the text format is clean for ``promtool``;
* the vectorized tallies bin exactly as ``prometheus_client``'s own ``Histogram`` does.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import prometheus_client
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter
from prometheus_client import Histogram as PromHistogram
from prometheus_client.parser import text_string_to_metric_families

import cdas
from cdas.client import GrpcClient, RestClient
from cdas.client.retry import NO_RETRY
from cdas.core.errors import UnauthenticatedError
from cdas.core.views import AppliedGroups, ReportOutcome
from cdas.observe.metrics import Metrics
from cdas.service.background import BackgroundService
from cdas.service.settings import ServiceSettings
from cdas.v1 import coordinator_pb2 as pb
from tests.prometheus_server import promtool
from tests.redis_servers import RedisServer
from tests.services import grpc_target, rest_url, running_service
from tests.test_service_errors import assert_grpc_error, assert_rest_error, grpc_failure, stub_of

# ---------------------------------------------------------------- the spec's label values
BATCH_LE = [f"{k / 10:.1f}" for k in range(-9, 11)] + ["+Inf"]
"""``cdas_batch_difficulty`` buckets: -0.9, -0.8, ..., 1.0, +Inf."""
PASS_LE = ["0.0", "0.125", "0.25", "0.375", "0.5", "0.625", "0.75", "0.875", "1.0", "+Inf"]
CENTRES = ["-0.9", "-0.7", "-0.5", "-0.3", "-0.1", "0.1", "0.3", "0.5", "0.7", "0.9"]
DIFFICULTY_LABELS = [*CENTRES, "none"]
PROMPT_LE = [repr(round(-1 + 0.05 * k, 2)) for k in range(1, 41)] + ["+Inf"]
"""``cdas_run_prompt_difficulty`` buckets: the 40 upper edges -0.95 .. 1.0 of the state's bins."""
OPERATIONS = [
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
]
TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
GRPC_AUTH = (("authorization", f"Bearer {TOKEN}"),)


def centre(d: float) -> str:
    """The ``difficulty`` label of a D, with exact arithmetic: the bin [-1 + 0.2k, -1 + 0.2(k+1))
    holding D (the last one closed at 1)."""
    k = math.floor((Fraction(d) + 1) / Fraction(1, 5))
    return CENTRES[min(max(k, 0), 9)]


def cumulative(values: Sequence[float], bounds: Sequence[str]) -> dict[tuple[str, ...], float]:
    """Prometheus buckets: for each ``le``, how many values are <= it."""
    return {(le,): float(sum(v <= float(le) for v in values)) for le in bounds}


# ---------------------------------------------------------------- scraping
@dataclass
class Scrape:
    """One parsed exposition: family types and every sample by (name, labels)."""

    text: str
    types: dict[str, str]
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        types: dict[str, str] = {}
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in samples, f"sample twice: {key}"
                samples[key] = sample.value
        return cls(text, types, samples)

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name: str, *keys: str, **where: str) -> dict[tuple[str, ...], float]:
        """The samples of ``name`` whose labels include ``where``, by the values of ``keys`` (the
        remaining labels must be exactly ``keys``)."""
        found: dict[tuple[str, ...], float] = {}
        for (sample, labels), value in self.samples.items():
            labels_ = dict(labels)
            if sample != name or any(labels_.get(k) != v for k, v in where.items()):
                continue
            assert set(labels_) == set(keys) | set(where), (name, labels_)
            found[tuple(labels_[k] for k in keys)] = value
        return found

    def runs_named(self) -> set[str]:
        return {dict(labels)["run"] for _, labels in self.samples if "run" in dict(labels)}


def scrape(url: str) -> Scrape:
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return Scrape.parse(response.text)


# ---------------------------------------------------------------- hand-computed tallies
@dataclass
class Expected:
    """What the tallies of one run must say, computed from the results the test sent."""

    applied: int = 0
    duplicates: int = 0
    zero_gradient: int = 0
    rollouts: int = 0
    trained_at: list[float] = field(default_factory=list)
    pass_rates: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    done: set[tuple[int, str]] = field(default_factory=set)


def outcome_of(result: Mapping[str, Any]) -> tuple[float, int, bool]:
    """(pass rate, rollouts, zero-gradient) of one result, from the contract's three forms."""
    if "rewards" in result:
        rewards = result["rewards"]
        return (
            sum(r > 0.5 for r in rewards) / len(rewards),
            len(rewards),
            min(rewards) == max(rewards),
        )
    if "correct" in result:
        k, g = result["correct"], result["total"]
        return k / g, g, k in (0, g)
    p = result["pass_rate"]
    return p, result["total"], p in (0.0, 1.0)


def report(
    client: Any, expected: Expected, run_id: str, step: int, results: list[dict[str, Any]]
) -> None:
    """Report, and add to ``expected`` what this report must add (D before, from get_prompt)."""
    before = {r["prompt_id"]: client.get_prompt(run_id, r["prompt_id"]) for r in results}
    outcome = client.report_results(run_id, step, results)
    fresh = 0
    for result in results:
        pid = result["prompt_id"]
        if (step, pid) in expected.done:
            expected.duplicates += 1
            continue
        expected.done.add((step, pid))
        fresh += 1
        pass_rate, total, zero = outcome_of(result)
        expected.applied += 1
        expected.rollouts += total
        expected.zero_gradient += zero
        info = before[pid]
        if info.updates == 0:
            label = "none"
        else:
            expected.trained_at.append(info.difficulty)
            label = centre(info.difficulty)
        expected.pass_rates[label].append(pass_rate)
    assert (outcome.applied, outcome.duplicates) == (fresh, len(results) - fresh)


def correct(pid: str, k: int, g: int = 8) -> dict[str, Any]:
    return {"prompt_id": pid, "correct": k, "total": g}


def assert_tallies(s: Scrape, run_id: str, expected: Expected) -> None:
    assert s.get("cdas_results_applied_total", run=run_id) == expected.applied
    assert s.get("cdas_results_duplicate_total", run=run_id) == expected.duplicates
    assert s.get("cdas_zero_gradient_groups_total", run=run_id) == expected.zero_gradient
    assert s.get("cdas_rollouts_total", run=run_id) == expected.rollouts
    assert s.series("cdas_batch_difficulty_bucket", "le", run=run_id) == cumulative(
        expected.trained_at, BATCH_LE
    )
    # no _sum/_count (OpenMetrics: not on a histogram with negative buckets; docs/metrics.md)
    assert s.series("cdas_batch_difficulty_count", run=run_id) == {}
    assert s.series("cdas_batch_difficulty_sum", run=run_id) == {}
    counts = s.series("cdas_batch_pass_rate_count", "difficulty", run=run_id)
    assert sorted(counts) == sorted((label,) for label in DIFFICULTY_LABELS)
    for label in DIFFICULTY_LABELS:
        values = expected.pass_rates.get(label, [])
        buckets = s.series("cdas_batch_pass_rate_bucket", "le", run=run_id, difficulty=label)
        assert buckets == cumulative(values, PASS_LE), label
        assert counts[(label,)] == len(values), label
        total = s.get("cdas_batch_pass_rate_sum", run=run_id, difficulty=label)
        assert total == pytest.approx(sum(values), rel=1e-12, abs=1e-12), label


def test_report_tallies_equal_hand_computed_values(coord: cdas.Coordinator) -> None:
    """Known results over REST: the counters and both batch histograms, bucket by bucket. The
    first difficulties are D = 0.5 - s exactly (C = 0), so values sit on bucket bounds (-0.5, 0,
    0.5; pass rates k/8), where ``le`` must include them."""
    expected = Expected()
    with running_service(coord) as service, RestClient(rest_url(service.bound)) as client:
        url = rest_url(service.bound)
        client.put_run("r", prompts=20, seed=2)
        step0 = [
            correct("0", 0),  # zero gradient, D -> 0.5
            correct("1", 8),  # zero gradient, D -> -0.5
            correct("2", 4),  # D -> 0
            correct("3", 2),
            correct("4", 6),
            {"prompt_id": "5", "rewards": [1.0, 1.0, 1.0, 1.0]},  # zero gradient, G = 4
            correct("7", 1, 16),  # s = 1/16, between buckets
            correct("8", 7),
            correct("9", 3),
            {"prompt_id": "14", "pass_rate": 0.35, "total": 20},
        ]
        report(client, expected, "r", 0, step0)
        report(client, expected, "r", 0, step0)  # the retry: all duplicates
        assert expected.duplicates == len(step0)
        step1 = [
            correct("0", 8),  # trained at D = 0.5 exactly
            correct("1", 0),  # at -0.5
            correct("2", 5),  # at 0
            correct("3", 4),
            correct("8", 8),
            {"prompt_id": "7", "pass_rate": 0.9, "total": 10},
            {"prompt_id": "14", "rewards": [0.0, 0.9, 0.2, 0.7, 1.0]},
            correct("10", 3, 4),  # first results: difficulty "none"
            {"prompt_id": "11", "rewards": [0.0, 1.0, 0.0, 0.0, 1.0]},
            {"prompt_id": "12", "pass_rate": 0.3, "total": 10},
        ]
        report(client, expected, "r", 1, step1)
        report(client, expected, "r", 1, [correct("0", 8), correct("1", 0), correct("13", 0, 2)])
        report(client, expected, "r", 3, [correct("0", 2), correct("10", 1, 4), correct("9", 8)])
        # a rejected report commits nothing and counts nothing
        with pytest.raises(cdas.InvalidArgumentError):
            client.report_results("r", 4, [correct("1", 2), correct("nope", 1)])
        # nothing silly: every kind of value was exercised
        assert expected.duplicates == len(step0) + 2
        assert len(expected.trained_at) == 10
        assert {0.5, -0.5, 0.0} <= set(expected.trained_at)
        assert len([k for k, v in expected.pass_rates.items() if v and k != "none"]) >= 4

        s = scrape(url)
        assert_tallies(s, "r", expected)
        assert s.series("cdas_batch_difficulty_bucket", "le", run="r")[("+Inf",)] == (
            expected.applied - len(expected.pass_rates["none"])
        )
        # the API's own counts agree
        run = client.get_run("r")
        assert (run.results, run.duplicates, run.rollouts) == (
            expected.applied,
            expected.duplicates,
            expected.rollouts,
        )
        assert s.types["cdas_batch_difficulty"] == "histogram"
        assert s.types["cdas_batch_pass_rate"] == "histogram"
        for name in ("applied", "duplicate"):
            assert s.types[f"cdas_results_{name}"] == "counter"


# ---------------------------------------------------------------- gauges read at scrape time
def test_scrape_gauges_equal_the_apis_values(coord: cdas.Coordinator) -> None:
    rng = np.random.default_rng(5)
    with running_service(coord) as service, RestClient(rest_url(service.bound)) as client:
        url = rest_url(service.bound)
        client.put_run("a", prompts=60, seed=1)
        pass_prob = rng.uniform(0, 1, 60)
        for step in range(5):
            batch = client.next_batch("a", step, 10)
            client.report_results(
                "a",
                step,
                [correct(p, int(rng.binomial(8, pass_prob[int(p)]))) for p in batch.prompt_ids],
            )
        client.put_run("b", strategy="random", prompts=30)  # never trained
        client.add_prompts("b", 5)
        client.put_run("c", strategy="dynamic", prompts=12)
        client.next_batch("c", 0, 4)  # a step, no results

        s = scrape(url)
        store = "redis" if isinstance(coord.store, cdas.RedisStore) else "memory"
        assert s.series("cdas_build_info", "version", "store") == {(cdas.__version__, store): 1}
        assert s.get("cdas_store_up") == 1
        assert s.get("cdas_ready") == 1
        ping = s.get("cdas_store_ping_seconds")
        assert ping is not None
        assert 0 <= ping < 5
        assert s.get("cdas_runs") == 3
        assert s.series("cdas_run_info", "run", "strategy") == {
            ("a", "cdas"): 1,
            ("b", "random"): 1,
            ("c", "dynamic"): 1,
        }
        for run_id in ("a", "b", "c"):
            state = client.get_state(run_id)
            assert s.get("cdas_run_competence", run=run_id) == state.competence  # to the bit
            assert s.get("cdas_run_prompts", run=run_id) == state.size
            assert s.get("cdas_run_prompts_seen", run=run_id) == state.seen
            assert s.get("cdas_run_prompts_retired", run=run_id) == state.retired == 0
            latest = s.get("cdas_run_step", run=run_id)
            assert latest == (None if state.step is None else float(state.step))
            difficulties = [
                info.difficulty
                for info in (client.get_prompt(run_id, str(i)) for i in range(state.size))
                if info.updates > 0
            ]
            assert len(difficulties) == state.seen
            mean = s.get("cdas_run_difficulty_mean", run=run_id)
            if state.seen:
                assert mean == pytest.approx(np.mean(difficulties), rel=1e-12, abs=1e-14)
            else:
                assert mean is None
            buckets = s.series("cdas_run_prompt_difficulty_bucket", "le", run=run_id)
            assert list(buckets) == [(le,) for le in PROMPT_LE]
            cumulated = np.cumsum(state.histogram_counts).tolist()
            assert list(buckets.values()) == [*cumulated, state.seen]
            assert s.get("cdas_run_prompt_difficulty_gcount", run=run_id) == state.seen
            gsum = s.get("cdas_run_prompt_difficulty_gsum", run=run_id)
            assert gsum == pytest.approx(sum(difficulties), rel=1e-12, abs=1e-12)
        assert s.get("cdas_run_step", run="c") == 0
        assert s.get("cdas_run_prompts", run="b") == 35
        assert s.get("cdas_run_prompts_seen", run="a") == 50
        assert s.types["cdas_run_prompt_difficulty"] == "gaugehistogram" or (
            s.types["cdas_run_prompt_difficulty"] == "histogram"
            and s.types["cdas_run_prompt_difficulty_gcount"] == "gauge"
        )
        # the untrained runs have no tallies: nothing was reported
        assert s.get("cdas_results_applied_total", run="b") is None
        # draining: the store answers, the service is not ready
        service.health.draining = True
        try:
            s = scrape(url)
            assert (s.get("cdas_store_up"), s.get("cdas_ready")) == (1, 0)
        finally:
            service.health.draining = False
        assert scrape(url).get("cdas_ready") == 1


def test_a_deleted_runs_series_are_removed(coord: cdas.Coordinator) -> None:
    with (
        running_service(coord) as service,
        RestClient(rest_url(service.bound)) as rest,
        GrpcClient(grpc_target(service.bound)) as rpc,
    ):
        url = rest_url(service.bound)
        for run_id in ("keep", "gone-rest", "gone-grpc"):
            rest.put_run(run_id, prompts=10)
            rest.report_results(run_id, 0, [correct("1", 3), correct("2", 8)])
            rest.report_results(run_id, 1, [correct("1", 5)])
        s = scrape(url)
        assert s.runs_named() == {"keep", "gone-rest", "gone-grpc"}
        keep = {k: v for k, v in s.samples.items() if ("run", "keep") in k[1]}
        assert len(keep) > 100  # the gauges, the counters, and every bucket
        rest.delete_run("gone-rest")
        rpc.delete_run("gone-grpc")
        s = scrape(url)
        assert s.runs_named() == {"keep"}
        assert {k: v for k, v in s.samples.items() if ("run", "keep") in k[1]} == keep
        assert s.get("cdas_runs") == 1
        # the same id again starts from nothing
        rest.put_run("gone-rest", prompts=10)
        rest.report_results("gone-rest", 0, [correct("4", 2)])
        s = scrape(url)
        assert s.get("cdas_results_applied_total", run="gone-rest") == 1
        assert s.get("cdas_results_duplicate_total", run="gone-rest") == 0
        assert s.get("cdas_rollouts_total", run="gone-rest") == 8
        assert s.get("cdas_batch_pass_rate_count", run="gone-rest", difficulty="none") == 1
        assert s.get("cdas_results_applied_total", run="keep") == 3


# ---------------------------------------------------------------- requests
@dataclass
class Requests:
    """The request metrics a test expects: counts per (transport, operation), errors per code."""

    counts: dict[tuple[str, ...], float] = field(default_factory=lambda: defaultdict(float))
    errors: dict[tuple[str, ...], float] = field(default_factory=lambda: defaultdict(float))

    def add(self, transport: str, operation: str, code: str | None = None) -> None:
        self.counts[(transport, operation)] += 1
        if code is not None:
            self.errors[(transport, operation, code)] += 1

    def check(self, s: Scrape) -> None:
        counts = s.series("cdas_request_duration_seconds_count", "transport", "operation")
        assert counts == dict(self.counts)
        errors = s.series("cdas_request_errors_total", "transport", "operation", "code")
        assert errors == dict(self.errors)
        for transport, operation in self.counts:
            buckets = s.series(
                "cdas_request_duration_seconds_bucket",
                "le",
                transport=transport,
                operation=operation,
            )
            values = list(buckets.values())
            assert values == sorted(values)
            assert buckets[("+Inf",)] == self.counts[(transport, operation)]
            total = s.get(
                "cdas_request_duration_seconds_sum", transport=transport, operation=operation
            )
            assert total is not None
            assert 0 <= total < 60


def test_requests_are_counted_per_transport_and_operation() -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    expected = Requests()
    with (
        running_service(coordinator) as service,
        RestClient(rest_url(service.bound), retry=NO_RETRY) as rest,
        GrpcClient(grpc_target(service.bound), retry=NO_RETRY) as rpc,
    ):
        url = rest_url(service.bound)
        for transport, client, times in (("rest", rest, 1), ("grpc", rpc, 2)):
            run_id = f"run-{transport}"
            calls: list[tuple[str, tuple[Any, ...]]] = [
                ("put_run", (run_id, "cdas", None, 0, 20)),
                ("add_prompts", (run_id, 4)),
                ("next_batch", (run_id, 0, 5)),
                ("get_run", (run_id,)),
                ("list_runs", ()),
                ("get_prompt", (run_id, "3")),
                ("get_state", (run_id, 3)),
                ("snapshot", (run_id,)),
                ("export_prompts", (run_id,)),  # one page, read by the call: one request
            ]
            for _ in range(times):
                for name, args in calls:
                    getattr(client, name)(*args)
                    expected.add(transport, name)
            batch = client.next_batch(run_id, 1, 3)
            client.report_results(run_id, 1, [correct(p, 3) for p in batch.prompt_ids])
            client.advance(run_id, 1, [correct(p, 3) for p in batch.prompt_ids], 3)
            client.restore(f"{run_id}-copy", client.snapshot(run_id))
            client.delete_run(f"{run_id}-copy")
            names = ("next_batch", "report_results", "advance", "snapshot", "restore", "delete_run")
            for name in names:
                expected.add(transport, name)
        # not API operations: never counted
        with httpx.Client(base_url=url) as http:
            for path in ("/healthz", "/readyz", "/metrics", "/", "/assets/page.js", "/nothing"):
                http.get(path)
        s = scrape(url)
        assert {op for _, op in expected.counts} == set(OPERATIONS)
        expected.check(s)
        assert s.types["cdas_request_duration_seconds"] == "histogram"


def test_errors_are_counted_by_code_on_both_transports() -> None:
    """Every contract code the doors can answer here, with a token and a small body limit; a
    REST request refused before routing (413, no endpoint) is operation ``unknown``; a request
    the client refuses itself reaches nothing and counts nowhere."""
    limit = 1000
    settings = ServiceSettings(
        port=0, grpc_port=0, grace_seconds=2, token=TOKEN, max_body_bytes=limit
    )
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    expected = Requests()
    big = {"ids": [f"p{i:05d}" for i in range(200)]}
    with (
        running_service(coordinator, settings) as service,
        httpx.Client(base_url=rest_url(service.bound), headers=AUTH, timeout=30) as http,
        GrpcClient(grpc_target(service.bound), TOKEN, retry=NO_RETRY) as rpc,
        GrpcClient(grpc_target(service.bound), retry=NO_RETRY) as anonymous,
        grpc.insecure_channel(grpc_target(service.bound)) as channel,
    ):
        # ---- REST
        ok = http.put("/v1/runs/r", json={"prompts": {"count": 20}})
        assert ok.status_code == 201
        expected.add("rest", "put_run")
        assert_rest_error(http.get("/v1/runs/nope"), "run_not_found")
        expected.add("rest", "get_run", "run_not_found")
        for value in ("-1", "x"):
            response = http.get("/v1/runs/r/state", params={"frontier": value})
            assert_rest_error(response, "invalid_argument", "frontier")
            expected.add("rest", "get_state", "invalid_argument")
        assert http.get("/v1/runs/r/state", params={"frontier": 2}).status_code == 200
        expected.add("rest", "get_state")
        conflict = http.put("/v1/runs/r", json={"strategy": "random", "prompts": {"count": 20}})
        assert_rest_error(conflict, "conflict")
        expected.add("rest", "put_run", "conflict")
        for headers in ({"authorization": ""}, {"authorization": "Bearer wrong"}):
            assert_rest_error(http.get("/v1/runs/r", headers=headers), "unauthenticated")
            expected.add("rest", "get_run", "unauthenticated")
        too_big = http.post("/v1/runs/r/prompts", json=big)
        assert_rest_error(too_big, "payload_too_large", str(limit))
        expected.add("rest", "unknown", "payload_too_large")
        body = httpx.Request("POST", "/", json=big).content
        chunked = http.post(
            "/v1/runs/r/prompts",
            content=iter([body[i : i + 100] for i in range(0, len(body), 100)]),
            headers={"content-type": "application/json"},
        )
        assert_rest_error(chunked, "payload_too_large", str(limit))
        expected.add("rest", "unknown", "payload_too_large")
        assert_rest_error(http.get("/v1/nothing"), "not_found")
        expected.add("rest", "unknown", "not_found")
        assert_rest_error(http.get("/v1/runs/r/prompts/zzz"), "prompt_not_found")
        expected.add("rest", "get_prompt", "prompt_not_found")
        assert http.get("/v1/runs/r").status_code == 200
        expected.add("rest", "get_run")
        # ---- gRPC
        rpc.put_run("g", prompts=10)
        expected.add("grpc", "put_run")
        with pytest.raises(cdas.RunNotFoundError):
            rpc.get_run("nope")
        expected.add("grpc", "get_run", "run_not_found")
        stub = stub_of(channel)
        failure = grpc_failure(
            lambda: stub.GetState(
                pb.GetStateRequest(run_id="g", frontier=1001), timeout=10, metadata=GRPC_AUTH
            )
        )
        assert_grpc_error(failure, "invalid_argument", "frontier")
        expected.add("grpc", "get_state", "invalid_argument")
        with pytest.raises(cdas.ConflictError):
            rpc.put_run("g", strategy="random", prompts=10)
        expected.add("grpc", "put_run", "conflict")
        with pytest.raises(UnauthenticatedError):
            anonymous.get_run("g")
        expected.add("grpc", "get_run", "unauthenticated")
        chunks = [pb.RestoreChunk(run_id="other", data=b"\0" * 400) for _ in range(4)]
        failure = grpc_failure(lambda: stub.Restore(iter(chunks), timeout=10, metadata=GRPC_AUTH))
        assert_grpc_error(failure, "payload_too_large", str(limit))
        expected.add("grpc", "restore", "payload_too_large")
        with pytest.raises(cdas.PromptNotFoundError):
            rpc.get_prompt("g", "zzz")
        expected.add("grpc", "get_prompt", "prompt_not_found")
        assert rpc.get_state("g", 3).frontier == []
        expected.add("grpc", "get_state")
        # refused by the clients themselves: nothing reaches the service
        with pytest.raises(cdas.InvalidArgumentError):
            rpc.get_state("g", 1001)
        with RestClient(rest_url(service.bound), TOKEN, retry=NO_RETRY) as rest:
            with pytest.raises(cdas.InvalidArgumentError):
                rest.get_state("r", -1)
            # /metrics is open: no token needed
            scraped = httpx.get(f"{rest_url(service.bound)}/metrics")
        assert scraped.status_code == 200
        expected.check(Scrape.parse(scraped.text))


def test_a_method_not_allowed_is_not_counted_as_another_operation() -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    with running_service(coordinator) as service:
        url = rest_url(service.bound)
        response = httpx.patch(f"{url}/v1/runs/r")
        assert_rest_error(response, "method_not_allowed")
        errors = scrape(url).series("cdas_request_errors_total", "transport", "operation", "code")
    assert errors == {("rest", "unknown", "method_not_allowed"): 1}


# ---------------------------------------------------------------- the store down
def test_a_store_down_still_scrapes_with_store_up_0(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", None, "--appendonly", "yes").start()
    store = cdas.RedisStore(server.url, socket_timeout=5)
    try:
        coordinator = cdas.Coordinator(store)
        with running_service(coordinator) as service, RestClient(rest_url(service.bound)) as c:
            url = rest_url(service.bound)
            c.put_run("r", prompts=10)
            c.report_results("r", 0, [correct("1", 2), correct("2", 8)])
            up = scrape(url)
            assert (up.get("cdas_store_up"), up.get("cdas_ready"), up.get("cdas_runs")) == (1, 1, 1)
            competence = up.get("cdas_run_competence", run="r")
            assert competence == c.get_run("r").competence

            server.stop()
            down = scrape(url)
            assert down.get("cdas_store_up") == 0
            assert down.get("cdas_ready") == 0
            assert down.series("cdas_build_info", "version", "store") == {
                (cdas.__version__, "redis"): 1
            }
            store_gauges = [name for name in down.types if name.startswith("cdas_run")]
            assert store_gauges == [], store_gauges
            # the process's own tallies are still there
            assert down.get("cdas_results_applied_total", run="r") == 2
            assert httpx.get(f"{url}/readyz").status_code == 503

            server.start()
            back = scrape(url)
            assert (back.get("cdas_store_up"), back.get("cdas_ready")) == (1, 1)
            assert back.get("cdas_run_competence", run="r") == competence
    finally:
        server.stop()
        store.close()


# ---------------------------------------------------------------- registries
def test_services_in_one_process_count_in_their_own_registries() -> None:
    """Two replicas over one store: the store's gauges agree, the counts are each one's own."""
    store = cdas.MemoryStore()
    a, b = cdas.Coordinator(store), cdas.Coordinator(store)
    with (
        running_service(a) as service_a,
        running_service(b) as service_b,
        RestClient(rest_url(service_a.bound)) as client_a,
        GrpcClient(grpc_target(service_b.bound)) as client_b,
    ):
        assert service_a.metrics.registry is not service_b.metrics.registry
        client_a.put_run("r", prompts=10)
        client_a.report_results("r", 0, [correct("1", 3), correct("2", 4)])
        client_b.report_results("r", 0, [correct("2", 4), correct("3", 0)])
        client_b.get_run("r")
        sa, sb = scrape(rest_url(service_a.bound)), scrape(rest_url(service_b.bound))
        assert sa.get("cdas_run_competence", run="r") == sb.get("cdas_run_competence", run="r")
        assert sa.get("cdas_run_prompts_seen", run="r") == 3
        assert sb.get("cdas_run_prompts_seen", run="r") == 3
        assert sa.get("cdas_results_applied_total", run="r") == 2
        assert sb.get("cdas_results_applied_total", run="r") == 1
        assert sb.get("cdas_results_duplicate_total", run="r") == 1
        assert sa.get("cdas_zero_gradient_groups_total", run="r") == 0
        assert sb.get("cdas_zero_gradient_groups_total", run="r") == 1
        assert sa.series("cdas_request_duration_seconds_count", "transport", "operation") == {
            ("rest", "put_run"): 1,
            ("rest", "report_results"): 1,
        }
        assert sb.series("cdas_request_duration_seconds_count", "transport", "operation") == {
            ("grpc", "report_results"): 1,
            ("grpc", "get_run"): 1,
        }
    # nothing landed in the process's global registry
    assert prometheus_client.REGISTRY.get_sample_value("cdas_store_up") is None


def test_a_run_deleted_through_one_replica_leaves_no_series_on_another() -> None:
    store = cdas.MemoryStore()
    a, b = cdas.Coordinator(store), cdas.Coordinator(store)
    with running_service(a) as service_a, running_service(b) as service_b:
        with RestClient(rest_url(service_b.bound)) as client_b:
            client_b.put_run("r", prompts=10)
            client_b.report_results("r", 0, [correct("1", 3)])
        with RestClient(rest_url(service_a.bound)) as client_a:
            client_a.delete_run("r")
        assert scrape(rest_url(service_a.bound)).runs_named() == set()
        assert scrape(rest_url(service_b.bound)).runs_named() == set()


def test_a_service_given_a_registry_exposes_in_it() -> None:
    """An embedding program's registry: the coordinator's metrics beside the program's own."""
    registry = CollectorRegistry()
    mine = Counter("embedder_things", "The embedding program's own counter.", registry=registry)
    mine.inc(7)
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    background = BackgroundService(
        coordinator, ServiceSettings(port=0, grpc_port=0, grace_seconds=2), registry=registry
    )
    bound = background.start()
    try:
        assert background.service.metrics.registry is registry
        with RestClient(rest_url(bound)) as client:
            client.put_run("r", prompts=10)
            client.report_results("r", 0, [correct("1", 3), correct("2", 8, 8)])
        assert registry.get_sample_value("cdas_results_applied_total", {"run": "r"}) == 2
        assert registry.get_sample_value("cdas_zero_gradient_groups_total", {"run": "r"}) == 1
        assert registry.get_sample_value("cdas_runs") == 1
        # the middleware counts a request once the app has sent the whole answer, so the client
        # can read the answer a moment before the count lands: wait for it (bounded)
        labels = {"transport": "rest", "operation": "report_results"}
        deadline = time.monotonic() + 5
        while (
            registry.get_sample_value("cdas_request_duration_seconds_count", labels) is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        assert registry.get_sample_value("cdas_request_duration_seconds_count", labels) == 1
        s = scrape(rest_url(bound))
        assert s.get("embedder_things_total") == 7
        assert s.get("cdas_results_applied_total", run="r") == 2
    finally:
        background.stop()


# ---------------------------------------------------------------- the text format
def test_the_exposition_is_prometheus_text_and_promtool_clean(tmp_path: Path) -> None:
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    with (
        running_service(coordinator) as service,
        RestClient(rest_url(service.bound), retry=NO_RETRY) as rest,
        GrpcClient(grpc_target(service.bound), retry=NO_RETRY) as rpc,
    ):
        url = rest_url(service.bound)
        labels = {str(i): float(1 + i % 3) for i in range(12)}
        rest.put_run("cu", strategy="curriculum", prompts=list(labels), labels=labels)
        rpc.put_run("cd", prompts=30)
        for step in range(3):
            for run_id, client in (("cu", rest), ("cd", rpc)):
                batch = client.next_batch(run_id, step, 4)
                client.report_results(
                    run_id, step, [correct(p, (step * 3) % 9) for p in batch.prompt_ids]
                )
        rpc.put_run("tmp", prompts=3)
        rest.delete_run("tmp")
        with pytest.raises(cdas.RunNotFoundError):
            rest.get_run("tmp")
        with pytest.raises(cdas.RunNotFoundError):
            rpc.get_state("tmp")
        response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    media_type, *params = (part.strip() for part in response.headers["content-type"].split(";"))
    assert media_type == "text/plain"
    assert any(p in ("version=0.0.4", "version=1.0.0") for p in params), params
    assert response.text.endswith("\n")
    checked = promtool("check", "metrics", stdin=response.text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (checked.stdout + checked.stderr).strip() == ""
    s = Scrape.parse(response.text)
    assert s.runs_named() == {"cu", "cd"}
    names = {name for name, _ in s.samples}
    assert all(name.startswith(("cdas_", "python_", "process_")) for name in names), names
    (tmp_path / "metrics.txt").write_text(response.text)


# ---------------------------------------------------------------- the hot path
@st.composite
def reports(draw: st.DrawFn) -> list[AppliedGroups]:
    """A few reports of random groups: D anywhere in [-1, 1] and on the buckets' bounds (away
    from the difficulty bins' inner edges, where float rounding may pick either side), update
    counts with zeros (first results), pass rates on and between the buckets' bounds."""
    odd_bounds = [round(-0.9 + 0.2 * k, 1) for k in range(10)] + [-1.0, 1.0]
    inner_edges = [-1 + 0.2 * k for k in range(1, 10)]
    difficulty = st.one_of(
        st.sampled_from(odd_bounds),
        st.floats(-1.0, 1.0).filter(lambda d: min(abs(d - e) for e in inner_edges) > 1e-9),
    )
    pass_rate = st.one_of(
        st.sampled_from([k / 8 for k in range(9)]),
        st.integers(0, 16).map(lambda k: k / 16),
        st.floats(0.0, 1.0),
    )
    out = []
    for _ in range(draw(st.integers(1, 4))):
        size = draw(st.integers(0, 40))
        d = draw(st.lists(difficulty, min_size=size, max_size=size))
        t = draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
        p = draw(st.lists(pass_rate, min_size=size, max_size=size))
        g = draw(st.lists(st.integers(1, 64), min_size=size, max_size=size))
        out.append(
            AppliedGroups(
                np.asarray(d, dtype=np.float64),
                np.asarray(t, dtype=np.int32),
                np.asarray(p, dtype=np.float64),
                np.asarray(g, dtype=np.int64),
                np.asarray([x in (0.0, 1.0) for x in p], dtype=np.bool_),
            )
        )
    return out


@settings(max_examples=150, deadline=None)
@given(reports())
def test_vectorized_tallies_bin_as_prometheus_histograms_do(batches: list[AppliedGroups]) -> None:
    store = cdas.MemoryStore()
    cdas.Coordinator(store).put_run("r", prompts=1)  # a scrape exposes only the store's runs
    metrics = Metrics(CollectorRegistry(), store)
    reference = CollectorRegistry()
    difficulty = PromHistogram(
        "ref_difficulty", "", buckets=[float(le) for le in BATCH_LE[:-1]], registry=reference
    )
    pass_rate = PromHistogram(
        "ref_pass_rate",
        "",
        ["difficulty"],
        buckets=[float(le) for le in PASS_LE[:-1]],
        registry=reference,
    )
    applied = zero = rollouts = 0
    for groups in batches:
        size = groups.pass_rate.size
        metrics.results_reported("r", ReportOutcome(size, 1, 0.0, groups))
        applied, zero = applied + size, zero + int(groups.zero_gradient.sum())
        rollouts += int(groups.total.sum())
        for d, t, p in zip(groups.difficulty, groups.updates, groups.pass_rate, strict=True):
            if t > 0:
                difficulty.observe(float(d))
            pass_rate.labels("none" if t == 0 else centre(float(d))).observe(float(p))
    content, _ = metrics.exposition()
    s = Scrape.parse(content.decode())
    ref = Scrape.parse(prometheus_client.generate_latest(reference).decode())
    assert s.get("cdas_results_applied_total", run="r") == applied
    assert s.get("cdas_results_duplicate_total", run="r") == len(batches)
    assert s.get("cdas_zero_gradient_groups_total", run="r") == zero
    assert s.get("cdas_rollouts_total", run="r") == rollouts
    assert s.series("cdas_batch_difficulty_bucket", "le", run="r") == ref.series(
        "ref_difficulty_bucket", "le"
    )
    for label in DIFFICULTY_LABELS:
        got = s.series("cdas_batch_pass_rate_bucket", "le", run="r", difficulty=label)
        want = ref.series("ref_pass_rate_bucket", "le", difficulty=label)
        assert got == (want or {(le,): 0.0 for le in PASS_LE}), label
        got_sum = s.get("cdas_batch_pass_rate_sum", run="r", difficulty=label)
        want_sum = ref.get("ref_pass_rate_sum", difficulty=label) or 0.0
        assert got_sum == pytest.approx(want_sum, rel=1e-12, abs=1e-12), label


THREADS, REPEATS = 8, 300


def test_many_reports_from_threads_are_all_counted() -> None:
    """The tallies are taken under a lock: concurrent reports lose nothing."""
    store = cdas.MemoryStore()
    cdas.Coordinator(store).put_run("r", prompts=1)  # a scrape exposes only the store's runs
    metrics = Metrics(CollectorRegistry(), store)
    groups = AppliedGroups(
        np.linspace(-1, 1, 50),
        np.ones(50, dtype=np.int32),
        np.full(50, 0.5),
        np.full(50, 8, dtype=np.int64),
        np.zeros(50, dtype=np.bool_),
    )

    def work() -> None:
        for _ in range(REPEATS):
            metrics.results_reported("r", ReportOutcome(50, 0, 0.0, groups))

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: a lost update would show
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    s = Scrape.parse(metrics.exposition()[0].decode())
    assert s.get("cdas_results_applied_total", run="r") == THREADS * REPEATS * 50
    assert s.get("cdas_rollouts_total", run="r") == THREADS * REPEATS * 50 * 8
    assert (
        s.series("cdas_batch_difficulty_bucket", "le", run="r")[("+Inf",)] == THREADS * REPEATS * 50
    )
