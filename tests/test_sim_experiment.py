"""The experiment harness (``cdas.sim.experiment``), the simulated trainer and the summary:
determinism, the library against a real REST service, the coordinator's own history, and the
table's yardstick."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import astuple, replace
from pathlib import Path

import numpy as np
import pytest

import cdas
from cdas.client.rest import RestClient
from cdas.sim import experiment, summary
from cdas.sim.trainer import OVERSAMPLE, StepRecord, train
from cdas.sim.twin import IntArray, Twin, TwinParams
from tests.services import rest_url, running_service

SMALL = TwinParams().with_(prompts=2000, batch=128)
STEPS = 25  # past the first epoch (2000 / 128 = 15.6 steps), where CDAS leaves its warm-up
STRATEGIES = ("cdas", "random", "dynamic", "curriculum")
EXPERIMENT = experiment.Experiment(
    strategies=STRATEGIES, seeds=2, steps=STEPS, params=SMALL, band_sample=4
)
# dynamic sampling short of informative groups: a round of 3 x B rarely holds B of them
SCARCE = TwinParams().with_(prompts=2000, batch=256, unsolvable=0.5, solved=0.3, hard=1e6)


def _key(r: StepRecord) -> tuple[str, int, int]:
    return (r.strategy, r.seed, r.step)


def _library(exp: experiment.Experiment) -> list[StepRecord]:
    return experiment.run(cdas.Coordinator(cdas.MemoryStore()), exp)


def _record(step: int, accuracy: float, **changes: object) -> StepRecord:
    base = StepRecord(
        strategy="random",
        seed=0,
        step=step,
        competence=0.0,
        rounds=1,
        rollouts=100,
        trained=10,
        zero_gradient=0.5,
        pass_rate=0.5,
        signal=0.1,
        accuracy=accuracy,
        cost=1.5,
        band_low=-1.0,
        band_mid=0.0,
        band_high=1.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def library_records() -> list[StepRecord]:
    return _library(EXPERIMENT)


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    with running_service(cdas.Coordinator(cdas.MemoryStore())) as service:
        yield rest_url(service.bound)


# ---------------------------------------------------------------- determinism
def test_records_cover_every_strategy_seed_and_step(library_records: list[StepRecord]) -> None:
    assert len(library_records) == EXPERIMENT.total_steps() == 4 * 2 * STEPS
    assert [_key(r) for r in library_records] == [
        (s, seed, step) for s in STRATEGIES for seed in range(2) for step in range(1, STEPS + 1)
    ]
    for r in library_records:
        assert 0.0 <= r.zero_gradient <= 1.0
        assert 0.0 <= r.pass_rate <= 1.0
        assert 0.0 < r.accuracy < 1.0
        assert r.cost > 0
        assert r.band_low <= r.band_mid <= r.band_high
        if r.strategy != "dynamic":
            assert (r.rounds, r.rollouts, r.trained) == (1, SMALL.batch * SMALL.group, SMALL.batch)


def test_the_same_experiment_twice_gives_identical_records(
    library_records: list[StepRecord],
) -> None:
    assert _library(EXPERIMENT) == library_records


def test_seeds_and_strategies_differ(library_records: list[StepRecord]) -> None:
    runs = summary.group_runs(library_records)
    acc = {
        (s, seed): [r.accuracy for r in recs]
        for s, seeds in runs.items()
        for seed, recs in seeds.items()
    }
    assert acc[("random", 0)] != acc[("random", 1)]
    assert acc[("cdas", 0)] != acc[("random", 0)]
    # the first epoch is CDAS's warm-up: uniform draws, the same as Random's on the same seed
    assert acc[("cdas", 0)][:15] == acc[("random", 0)][:15]


def test_run_parallel_gives_the_same_records_as_run(library_records: list[StepRecord]) -> None:
    seen: list[StepRecord] = []
    lock = threading.Lock()

    def on_step(r: StepRecord) -> None:
        with lock:
            seen.append(r)

    parallel = experiment.run_parallel(cdas.Coordinator(cdas.MemoryStore()), EXPERIMENT, on_step)
    assert sorted(parallel, key=_key) == sorted(library_records, key=_key)
    assert sorted(seen, key=_key) == sorted(library_records, key=_key)


def test_on_step_sees_every_record_in_order() -> None:
    exp = replace(EXPERIMENT, strategies=("random",), seeds=1, steps=5)
    seen: list[StepRecord] = []
    records = experiment.run(cdas.Coordinator(cdas.MemoryStore()), exp, on_step=seen.append)
    assert seen == records
    assert [r.step for r in seen] == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------- through a real service
def test_a_rest_service_gives_the_library_records(
    service_url: str, library_records: list[StepRecord]
) -> None:
    with RestClient(service_url) as client:
        over_rest = experiment.run(client, EXPERIMENT)
        assert over_rest == library_records
        # again on the same service: the runs exist and are deleted first
        run_ids = {info.run_id for info in client.list_runs()}
        assert {EXPERIMENT.run_id(s, seed) for s in STRATEGIES for seed in range(2)} <= run_ids
        parallel = experiment.run_parallel(client, EXPERIMENT)
        assert sorted(parallel, key=_key) == sorted(library_records, key=_key)


def test_curriculum_runs_get_the_twins_labels(service_url: str) -> None:
    exp = replace(EXPERIMENT, strategies=("curriculum", "random"), seeds=1, steps=1, prefix="lab")
    twin = Twin(SMALL, 0)
    with RestClient(service_url) as client:
        experiment.run(client, exp)
        for prompt_id in ("0", "7", "1999"):
            info = client.get_prompt(exp.run_id("curriculum", 0), prompt_id)
            assert info.label == float(twin.labels[int(prompt_id)])
            assert client.get_prompt(exp.run_id("random", 0), prompt_id).label is None


# ---------------------------------------------------------------- the coordinator's history
@pytest.mark.parametrize(
    ("strategy", "params", "strategy_params"),
    [
        ("cdas", SMALL, {}),
        ("random", SMALL, {}),
        ("dynamic", SMALL, {}),
        ("dynamic", SCARCE, {}),
        ("dynamic", SCARCE, {"max_rounds": 2}),
    ],
)
def test_the_coordinators_history_agrees_with_the_records(
    strategy: str, params: TwinParams, strategy_params: dict[str, int]
) -> None:
    exp = experiment.Experiment(
        strategies=(strategy,),
        seeds=1,
        steps=12,
        params=params,
        band_sample=0,
        strategy_params={strategy: strategy_params},
    )
    coord = cdas.Coordinator(cdas.MemoryStore())
    records = experiment.run(coord, exp)
    history = coord.get_state(exp.run_id(strategy, 0)).history
    assert [h.step for h in history] == [r.step for r in records] == list(range(1, 13))
    for h, r in zip(history, records, strict=True):
        assert h.zero_gradient_ratio == r.zero_gradient
        assert h.rollouts == r.rollouts
        assert h.results * params.group == r.rollouts
        assert h.mean_pass_rate == pytest.approx(r.pass_rate, abs=1e-9)
    info = coord.get_run(exp.run_id(strategy, 0))
    assert info.rollouts == sum(r.rollouts for r in records)


class _SpyTwin(Twin):
    """The twin, recording the groups each step trains on."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.trained_k: list[IntArray] = []

    def learn(self, idx: IntArray, k: IntArray) -> float:
        self.trained_k.append(k.copy())
        return super().learn(idx, k)


def _issued(rounds: int, batch: int, prompts: int) -> int:
    """Prompts issued in ``rounds`` rounds of OVERSAMPLE x B, never more than the run holds."""
    issued = 0
    for _ in range(rounds):
        issued += min(OVERSAMPLE * batch, prompts - issued)
    return issued


@pytest.mark.parametrize(("params", "max_rounds"), [(SMALL, 10), (SCARCE, 10), (SCARCE, 2)])
def test_dynamic_sampling_trains_on_informative_groups_only(
    params: TwinParams, max_rounds: int
) -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run(
        "dyn", strategy="dynamic", params={"max_rounds": max_rounds}, prompts=params.prompts
    )
    twin = _SpyTwin(params, 0)
    records = train(coord, "dyn", twin, 12, rounds=True, band_sample=0)
    B, G = params.batch, params.group
    assert len(twin.trained_k) == len(records) == 12
    for r, k in zip(records, twin.trained_k, strict=True):
        assert r.rounds >= 1
        assert r.rounds <= max_rounds
        assert r.trained == k.size <= B
        assert np.all((k > 0) & (k < G)), "a zero-variance group was trained on"
        assert r.rollouts == _issued(r.rounds, B, params.prompts) * G
        assert r.signal == pytest.approx(float(twin.signal(k).sum()) / B)
        if r.trained < B:  # short only when no further round was possible
            assert r.rounds == max_rounds or _issued(r.rounds, B, params.prompts) == params.prompts
    if params is SCARCE:
        assert max(r.rounds for r in records) > 1
        assert min(r.trained for r in records) < B


def test_plain_grpo_trains_on_every_group_of_the_batch() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", strategy="random", prompts=SMALL.prompts, seed=3)
    twin = _SpyTwin(SMALL, 3)
    records = train(coord, "r", twin, 5, band_sample=0)
    for r, k in zip(records, twin.trained_k, strict=True):
        assert k.size == r.trained == SMALL.batch
        assert r.zero_gradient == float(np.mean((k == 0) | (k == SMALL.group)))
        assert r.pass_rate == pytest.approx(float(k.mean()) / SMALL.group)
        expected_cost = twin.cost_units(k) * (1 + SMALL.train_cost) * SMALL.gpu_hours_per_unit
        assert r.cost == pytest.approx(expected_cost)


# ---------------------------------------------------------------- the summary
def test_reach_returns_the_first_step_at_the_target_and_nan_when_never() -> None:
    recs = [_record(1, 0.10), _record(2, 0.20), _record(3, 0.30), _record(4, 0.30)]
    assert summary.reach(recs, 0.25) == (3.0, 300.0, 4.5)
    assert summary.reach(recs, 0.30) == (3.0, 300.0, 4.5)
    assert summary.reach(recs, 0.20) == (2.0, 200.0, 3.0)
    assert summary.reach(recs, 0.05) == (1.0, 100.0, 1.5)
    never = summary.reach(recs, 0.31)
    assert all(math.isnan(x) for x in never)
    assert all(math.isnan(x) for x in summary.reach([], 0.0))


def test_targets_are_randoms_final_accuracy_per_seed(library_records: list[StepRecord]) -> None:
    goal = summary.targets(library_records)
    finals = {
        r.seed: r.accuracy for r in library_records if r.strategy == "random" and r.step == STEPS
    }
    assert goal == finals
    assert summary.target_accuracy(library_records) == pytest.approx(np.mean(list(finals.values())))
    assert summary.targets(library_records, reference="nobody") == {}


def test_summarize_randoms_row_reaches_its_own_final_at_the_last_step(
    library_records: list[StepRecord],
) -> None:
    rows = {row.strategy: row for row in summary.summarize(library_records)}
    assert list(rows) == list(STRATEGIES)
    rnd = rows["random"]
    assert (rnd.steps_to_target.mean, rnd.steps_to_target.std) == (STEPS, 0.0)
    assert rnd.steps_to_target.count == rnd.steps_to_target.seeds == 2
    assert rnd.rollouts_to_target.mean == rnd.rollouts.mean == STEPS * SMALL.batch * SMALL.group
    assert rnd.gpu_hours_to_target.mean == pytest.approx(rnd.gpu_hours.mean)
    finals = [r.accuracy for r in library_records if r.strategy == "random" and r.step == STEPS]
    assert rnd.final_accuracy.mean == pytest.approx(np.mean(finals))
    assert rnd.final_accuracy.std == pytest.approx(np.std(finals))
    for row in rows.values():
        assert row.steps_to_target.count == 0 or 1 <= row.steps_to_target.mean <= STEPS


def test_summarize_counts_seeds_that_never_reach_the_target() -> None:
    records = [
        _record(1, 0.1), _record(2, 0.4),
        _record(1, 0.2, seed=1), _record(2, 0.5, seed=1),
        _record(1, 0.45, strategy="other"), _record(2, 0.46, strategy="other"),
        _record(1, 0.1, strategy="other", seed=1), _record(2, 0.2, strategy="other", seed=1),
    ]  # fmt: skip
    rows = {row.strategy: row for row in summary.summarize(records)}
    other = rows["other"].steps_to_target
    assert (other.mean, other.count, other.seeds) == (1.0, 1, 2)
    assert other.text(1) == "1.0 ± 0.0 (1 of 2 seeds)"
    assert rows["random"].steps_to_target.text(1) == "2.0 ± 0.0"
    nobody = summary.summarize([_record(1, 0.1, strategy="other")])[0]
    assert nobody.steps_to_target.text() == "not reached"


def test_the_tables_have_a_row_per_strategy(
    library_records: list[StepRecord], tmp_path: Path
) -> None:
    rows = summary.summarize(library_records)
    md = summary.markdown(rows).splitlines()
    assert len(md) == 2 + len(STRATEGIES)
    assert md[0].startswith("| strategy | mean zero-gradient share")
    assert [line.split("|")[1].strip() for line in md[2:]] == list(STRATEGIES)
    summary.write_csv(rows, tmp_path / "summary.csv")
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert lines[0].split(",")[:4] == [
        "strategy", "zero_gradient_mean", "zero_gradient_std", "zero_gradient_n"
    ]  # fmt: skip
    assert [line.split(",")[0] for line in lines[1:]] == list(STRATEGIES)
    text = summary.text_table(rows).splitlines()
    assert text[0].split()[0] == "strategy"
    assert [line.split()[0] for line in text[1:]] == list(STRATEGIES)


# ---------------------------------------------------------------- CSV
def test_write_csv_and_read_csv_round_trip(
    library_records: list[StepRecord], tmp_path: Path
) -> None:
    path = tmp_path / "steps.csv"
    experiment.write_csv(library_records, path)
    assert path.read_text().splitlines()[0].split(",") == StepRecord.columns()
    back = experiment.read_csv(path)
    assert back == library_records
    assert all(
        type(a) is type(b)
        for r, s in zip(back, library_records, strict=True)
        for a, b in zip(astuple(r), astuple(s), strict=True)
    )


def test_csv_round_trip_keeps_missing_bands_as_nan(tmp_path: Path) -> None:
    exp = replace(EXPERIMENT, strategies=("random",), seeds=1, steps=3, band_sample=0)
    records = _library(exp)
    path = tmp_path / "steps.csv"
    experiment.write_csv(records, path)
    back = experiment.read_csv(path)
    assert len(back) == 3
    for a, b in zip(back, records, strict=True):
        assert all(math.isnan(x) for x in (a.band_low, a.band_mid, a.band_high))
        assert replace(a, band_low=0.0, band_mid=0.0, band_high=0.0) == replace(
            b, band_low=0.0, band_mid=0.0, band_high=0.0
        )


# ---------------------------------------------------------------- arms: strategies and variants


def test_a_variant_label_runs_cdas_with_its_parameters() -> None:
    from cdas.sim import arms

    coordinator = cdas.Coordinator(cdas.MemoryStore())
    exp = experiment.Experiment(
        strategies=("cdas-retire-fast",), seeds=1, steps=3, params=SMALL, band_sample=0
    )
    records = experiment.run(coordinator, exp)
    assert {r.strategy for r in records} == {"cdas-retire-fast"}
    info = coordinator.get_run(exp.run_id("cdas-retire-fast", 0))
    assert info.strategy == "cdas"
    for name, value in arms.VARIANTS["cdas-retire-fast"][1].items():
        assert info.params[name] == value
    plain = coordinator.put_run("plain", strategy="cdas", prompts=10)
    assert plain.params["retire_after"] == 0
    assert plain.params["min_weight"] == 0.0


def test_arms_resolve_strategies_and_variants_and_name_an_unknown_one() -> None:
    from cdas.sim import arms

    assert arms.resolve("random") == ("random", {})
    assert arms.resolve("cdas-fast") == ("cdas", {"min_weight": 0.25})
    with pytest.raises(ValueError, match=r"'cdas-slow' does not exist; known: .*cdas-retire"):
        arms.resolve("cdas-slow")
    for label in arms.VARIANTS:  # every variant's parameters are ones the library accepts
        strategy, params = arms.resolve(label)
        cdas.Coordinator(cdas.MemoryStore()).put_run("v", strategy=strategy, params=params)
