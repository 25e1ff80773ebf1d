"""The twin's validation on real RL (``cdas.sim.realrun``): reading a ``cdas grpo`` run, the
protocol's targets, the fit and the predictions. A run made by the twin itself is the fixture
whose answers are known: fitted at the parameters that made it, the twin misses nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cdas.sim import calibrate, realrun
from cdas.sim.twin import Twin
from tests.realrun_fake import MADE_BY, STEPS, write_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> realrun.Measured:
    return realrun.Measured.load(write_run(tmp_path_factory.mktemp("real"), MADE_BY))


def test_load_reads_every_arm_and_seed_in_step_order(made: realrun.Measured) -> None:
    assert set(made.steps) == {"random", "cdas"}
    for runs in made.steps.values():
        assert sorted(runs) == list(realrun.SEEDS)
        for rows in runs.values():
            assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert made.last_step == STEPS
    assert set(made.warm) == {"always", "never", "heldout_accuracy", "train_accuracy"}


def test_load_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"warmstart\.json"):
        realrun.Measured.load(tmp_path)


def test_the_targets_are_the_protocols_steps_of_the_committed_run() -> None:
    """The protocol's steps, on the committed CPU-preset run (docs/grpo, 100 steps)."""
    committed = realrun.Measured.load(ROOT / "docs" / "grpo")
    steps: dict[str, list[int]] = {}
    for f in realrun.targets(committed):
        steps.setdefault(f.name, []).append(f.step)
    assert steps == {
        "always": [0],
        "never": [0],
        "zero_gradient": [5, 25, 50, 75, 98],
        "accuracy": [0, 25, 50, 75, 100],
        "train_accuracy": [0, 50, 100],
    }
    by = {(f.name, f.step): f.value for f in realrun.targets(committed)}
    random = committed.steps["random"]
    assert by[("accuracy", 50)] == pytest.approx(
        np.mean([rows[49]["accuracy"] for rows in random.values()])
    )
    window = [np.mean([r["zero_gradient"] for r in rows[22:27]]) for rows in random.values()]
    assert by[("zero_gradient", 25)] == pytest.approx(np.mean(window))
    assert by[("accuracy", 0)] == committed.warm["heldout_accuracy"]


def test_the_targets_are_randoms_alone(made: realrun.Measured) -> None:
    before = realrun.targets(made)
    for rows in made.steps["cdas"].values():
        for row in rows:
            row["zero_gradient"], row["accuracy"] = 1.0, 1.0
    assert realrun.targets(made) == before
    for rows in made.steps["random"].values():
        rows[-1]["accuracy"] += 0.5
    assert realrun.targets(made) != before


def test_the_twin_misses_nothing_at_the_parameters_that_made_the_run(tmp_path: Path) -> None:
    run = realrun.Measured.load(write_run(tmp_path, MADE_BY))
    figures = realrun.targets(run)
    assert realrun.loss(MADE_BY, run, figures) == pytest.approx(
        calibrate.pull(MADE_BY, realrun.PRIORS), abs=1e-9
    )
    away = MADE_BY.with_(ceiling=MADE_BY.ceiling + 1.0, specific=MADE_BY.specific * 3)
    assert realrun.loss(away, run, figures) > realrun.loss(MADE_BY, run, figures) + 10
    checks = realrun.validate(run, MADE_BY)
    fitted = [c for c in checks if c.tolerance is None]
    assert {c.arm for c in fitted} == {"random"}
    assert len(fitted) == len(figures)
    predicted = [c for c in checks if c.tolerance is not None]
    assert [(c.arm, c.name, c.step) for c in predicted] == [
        ("cdas", "mean_zero_gradient", STEPS),
        ("cdas", "accuracy", STEPS // 2),
        ("cdas", "accuracy", STEPS),
    ]
    assert all(c.inside and c.twin == pytest.approx(c.measured) for c in predicted)
    assert [c.tolerance for c in predicted] == [0.05, 0.02, 0.02]
    # away from them, the predictions move: the twin is being asked, not copied
    moved = realrun.validate(run, away)
    assert any(not c.inside for c in moved if c.tolerance is not None)


def test_the_fit_never_ends_worse_than_it_starts(made: realrun.Measured) -> None:
    start = realrun.scaled(made).with_(heldout_shift=0.0)
    figures = realrun.targets(made)
    fitted, value = realrun.fit(made, iterations=8)
    assert value == pytest.approx(realrun.loss(fitted, made, figures))
    assert value <= realrun.loss(start, made, figures)
    assert (fitted.prompts, fitted.batch, fitted.heldout) == (192, 16, 128)


def test_twin_run_reads_the_probe_and_the_warm_start_shares() -> None:
    run = realrun.twin_run(MADE_BY, "random", 0, 3, 40)
    assert len(run.records) == 3
    assert len(run.train_accuracy) == 4
    twin = Twin(MADE_BY, 0)  # the same world before any step
    p = twin.pass_probability(np.arange(MADE_BY.prompts, dtype=np.int64))
    assert run.train_accuracy[0] == pytest.approx(float(np.mean(p[:40])))
    assert run.always == pytest.approx(float(np.mean(p**8)))
    assert run.never == pytest.approx(float(np.mean((1 - p) ** 8)))
    assert run.accuracy0 == pytest.approx(twin.accuracy())


def test_the_real_runs_records_read_as_the_twins(made: realrun.Measured) -> None:
    """``records`` gives the real run's steps as the twin's records, so one summary and one
    criterion read both: every (arm, seed, step) once, the shared columns carried over."""
    records = made.records()
    assert len(records) == 2 * len(realrun.SEEDS) * STEPS
    assert {(r.strategy, r.seed, r.step) for r in records} == {
        (arm, seed, step)
        for arm in ("random", "cdas")
        for seed in realrun.SEEDS
        for step in range(1, STEPS + 1)
    }
    first = next(r for r in records if (r.strategy, r.seed, r.step) == ("random", 1, 3))
    row = made.steps["random"][1][2]
    assert (first.accuracy, first.zero_gradient) == (row["accuracy"], row["zero_gradient"])
    assert np.isnan(first.cost)  # a column the real run did not write
