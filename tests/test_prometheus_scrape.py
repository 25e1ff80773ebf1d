"""A real Prometheus scrapes a coordinator that the training twin drives over REST.

The end-to-end promise of the metrics: what Prometheus stores is what the API says. Prometheus
(Debian's package) runs with the committed prometheus.yml and rules.yml, only the target and the
intervals changed (1 s, not 15 s); the twin trains a few strategies side by side; once a scrape
newer than the end of training is in, ``cdas_run_competence`` equals the API's competence to the
last bit, the recording rules have series for the runs, and every dashboard query returns data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import cdas
from cdas.client.rest import RestClient
from cdas.core.errors import RunNotFoundError
from cdas.sim import experiment
from cdas.sim.trainer import StepRecord
from cdas.sim.twin import TwinParams
from tests.prometheus_server import (
    PrometheusServer,
    load_yaml,
    running_prometheus,
    scrape_config,
)
from tests.services import rest_url, running_service
from tests.test_monitoring_config import RULES, _targets, substitute

EXPERIMENT = experiment.Experiment(
    strategies=("cdas", "random", "dynamic"),
    seeds=1,
    steps=30,
    params=TwinParams().with_(prompts=400, heldout=100, batch=32),
    band_sample=4,
    prefix="prom",
)


@dataclass
class Trained:
    """The scraped world after training: Prometheus, the service's URL, the end of training."""

    prometheus: PrometheusServer
    url: str
    ended: float
    records: list[StepRecord]


GATE_STEP = EXPERIMENT.steps // 2
"""Every run waits at this step until Prometheus has scraped all of them once, so that the
counters have a sample mid-training and one after: rate() over them is then positive. (Prometheus
2.42 applies a new target only after its 5 s discovery/reload ticks, so the first scrape comes
about 5 s after start; the runs' first half trains meanwhile.)"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """Prometheus scraping a coordinator every second while the twin trains three runs on it."""
    directory = Path(tmp_path_factory.mktemp("prometheus"))
    mid_training_scrape = threading.Event()

    def gate(record: StepRecord) -> None:
        if record.step == GATE_STEP:
            mid_training_scrape.wait(timeout=60)

    with running_service(cdas.Coordinator(cdas.MemoryStore())) as service:
        url = rest_url(service.bound)
        target = url.removeprefix("http://")
        with (
            running_prometheus(directory, scrape_config(target)) as prometheus,
            RestClient(url) as client,
            ThreadPoolExecutor(1) as pool,
        ):
            training = pool.submit(experiment.run_parallel, client, EXPERIMENT, gate)
            try:
                prometheus.wait_for(
                    f'count(cdas_rollouts_total{{run=~"{EXPERIMENT.prefix}-.*"}})'
                    f" == {len(EXPERIMENT.strategies)}",
                    timeout=30,
                    what="a scrape with every run in training",
                )
            finally:
                mid_training_scrape.set()
            records = training.result(timeout=120)
            with pytest.raises(RunNotFoundError):  # the error panels have a series to show
                client.get_run(f"{EXPERIMENT.prefix}-no-such-run")
            ended = time.time()
            yield Trained(prometheus, url, ended, records)


def _run_ids() -> list[str]:
    return [EXPERIMENT.run_id(s, 0) for s in EXPERIMENT.strategies]


def _wait_for_a_scrape_after(trained: Trained, run_id: str, timeout: float = 15.0) -> None:
    """Until the run's competence sample in Prometheus was scraped after training ended (its
    timestamp is the scrape's start), so it holds the final value."""
    deadline = time.monotonic() + timeout
    expr = f'timestamp(cdas_run_competence{{run="{run_id}"}})'
    while True:
        result = trained.prometheus.query(expr)
        if result and float(result[0]["value"][1]) > trained.ended:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"no scrape of {run_id} after the end of training: {result}")
        time.sleep(0.2)


def test_promql_competence_equals_the_apis(trained: Trained) -> None:
    """PromQL's ``cdas_run_competence{run=...}`` is the API's ``get_run(id).competence``."""
    assert len(trained.records) == EXPERIMENT.total_steps()
    with RestClient(trained.url) as client:
        for run_id in _run_ids():
            _wait_for_a_scrape_after(trained, run_id)
            api = client.get_run(run_id)
            assert api.step == EXPERIMENT.steps
            (sample,) = trained.prometheus.query(f'cdas_run_competence{{run="{run_id}"}}')
            assert sample["metric"]["job"] == "cdas"
            value = float(sample["value"][1])
            assert value == pytest.approx(api.competence, abs=1e-12, rel=0), run_id
            (step,) = trained.prometheus.query(f'cdas_run_step{{run="{run_id}"}}')
            assert float(step["value"][1]) == EXPERIMENT.steps
            (info,) = trained.prometheus.query(f'cdas_run_info{{run="{run_id}"}}')
            assert info["metric"]["strategy"] == api.strategy


def test_counters_equal_the_apis_counts(trained: Trained) -> None:
    """The per-run counters Prometheus scraped after the end are the run's own counts."""
    with RestClient(trained.url) as client:
        for run_id in _run_ids():
            _wait_for_a_scrape_after(trained, run_id)
            api = client.get_run(run_id)
            for metric, expected in (
                ("cdas_results_applied_total", api.results),
                ("cdas_results_duplicate_total", api.duplicates),
                ("cdas_rollouts_total", api.rollouts),
            ):
                (sample,) = trained.prometheus.query(f'{metric}{{run="{run_id}"}}')
                assert float(sample["value"][1]) == expected, (run_id, metric)


def test_the_recording_rules_have_series_for_the_runs(trained: Trained) -> None:
    """The committed rules, evaluated by Prometheus on real data: the per-run rules have a
    series for every run, with values that make sense; the request rules have series."""
    prometheus = trained.prometheus
    for run_id in _run_ids():
        (share,) = prometheus.wait_for(
            f'run:cdas_zero_gradient_groups_per_results_applied:ratio_rate5m{{run="{run_id}"}}'
        )
        assert 0.0 <= float(share["value"][1]) <= 1.0
        (passing,) = prometheus.wait_for(f'run:cdas_batch_pass_rate:mean5m{{run="{run_id}"}}')
        assert 0.0 < float(passing["value"][1]) < 1.0
        (rollouts,) = prometheus.wait_for(f'run:cdas_rollouts:rate5m{{run="{run_id}"}}')
        assert float(rollouts["value"][1]) > 0
    records = [
        rule["record"]
        for group in load_yaml(RULES)["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]
    for record in records:
        prometheus.wait_for(record, what=f"recording rule {record}")
    (server_errors,) = prometheus.wait_for(
        'transport:cdas_request_server_errors_per_requests:ratio_rate5m{transport="rest"}'
    )
    assert float(server_errors["value"][1]) == 0.0  # a run_not_found is the caller's error


def test_the_alerts_on_a_healthy_service(trained: Trained) -> None:
    """The alert rules are loaded and evaluate cleanly. On a healthy service (store and
    coordinator up, no server errors) none fires; the zero-gradient alert may be pending, never
    firing (it needs 15 minutes), and only for a run whose share is above 0.6: DAPO's dynamic
    sampling applies every oversampled group, most of them all-right or all-wrong."""
    response = httpx.get(f"{trained.prometheus.url}/api/v1/rules?type=alert", timeout=10)
    groups = response.json()["data"]["groups"]
    alerts = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert {
        "CdasRunZeroGradientShareHigh",
        "CdasStoreDown",
        "CdasCoordinatorDown",
        "CdasServerErrorRatioHigh",
    } <= set(alerts)
    for name, rule in alerts.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))
        if name != "CdasRunZeroGradientShareHigh":
            assert rule["state"] == "inactive", (name, rule["alerts"])
    for alert in alerts["CdasRunZeroGradientShareHigh"]["alerts"]:
        assert alert["state"] == "pending", alert
        assert alert["labels"]["run"] in _run_ids()
        assert float(alert["value"]) > 0.6, alert


def test_every_dashboard_query_returns_data(trained: Trained) -> None:
    """Each panel query of the dashboard, ``$run`` set to one of the runs, returns a series:
    no panel would show "No data" on a service that trains. (Polled: a series that appeared in
    the last scrape, such as the one error's, needs a second sample before rate() has a value.)"""
    run_id = _run_ids()[0]
    _wait_for_a_scrape_after(trained, run_id)
    for where, expr in _targets():
        query = substitute(expr).replace('"run-a"', f'"{run_id}"').replace("[1h]", "[5m]")
        trained.prometheus.wait_for(query, timeout=10, what=f"{where}: {query}")
