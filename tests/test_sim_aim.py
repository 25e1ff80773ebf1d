"""Issue 16's aim as a criterion (``cdas.sim.aim``): the one rule both results pages judge the
CDAS variants by, on records made by hand so that each clause decides one verdict."""

from __future__ import annotations

import dataclasses
import math

from cdas.sim import aim, summary
from cdas.sim.trainer import StepRecord

STEPS = 10


def _run(arm: str, reach_at: int | None, zero_gradient: float, rollouts: int) -> list[StepRecord]:
    """Two seeds of ``arm``: accuracy climbs to Random's final (0.5) at ``reach_at`` (never when
    None, then it stops at 0.4)."""
    out = []
    for seed in (0, 1):
        for step in range(1, STEPS + 1):
            accuracy = 0.4 * step / STEPS if reach_at is None else 0.5 * min(1.0, step / reach_at)
            out.append(
                StepRecord(
                    arm,
                    seed,
                    step,
                    0.0,
                    1,
                    rollouts,
                    8,
                    zero_gradient,
                    0.5,
                    0.1,
                    accuracy,
                    1.0,
                    math.nan,
                    math.nan,
                    math.nan,
                )
            )
    return out


def _rows() -> dict[str, summary.Row]:
    records = (
        _run("random", STEPS, 0.6, 64)
        + _run("cdas", None, 0.2, 64)
        + _run("cdas-mix", 5, 0.3, 64)  # meets: faster, fewer zero-gradient groups, as lean
        + _run("cdas-fast", 5, 0.3, 128)  # twice Random's rollouts a step
        + _run("cdas-retire", 5, 0.7, 64)  # more zero-gradient groups than Random
        + _run("cdas-retire-fast", STEPS, 0.3, 64)  # no faster than Random
    )
    return {r.strategy: r for r in summary.summarize(records)}


def test_each_clause_of_the_criterion_decides() -> None:
    rows = _rows()
    random = rows["random"]
    assert aim.meets(rows["cdas-mix"], random)
    assert not aim.meets(rows["cdas-fast"], random)
    assert not aim.meets(rows["cdas-retire"], random)
    assert not aim.meets(rows["cdas-retire-fast"], random)
    assert not aim.meets(rows["cdas"], random)


def test_a_variant_must_reach_on_every_seed() -> None:
    records = _run("random", STEPS, 0.6, 64) + _run("cdas", None, 0.2, 64)
    mixed = _run("cdas-mix", 5, 0.3, 64)
    # seed 1 never gets there
    one_seed = [r if r.seed == 0 else dataclasses.replace(r, accuracy=0.1) for r in mixed]
    rows = {r.strategy: r for r in summary.summarize(records + one_seed)}
    assert rows["cdas-mix"].steps_to_target.count == 1
    assert not aim.meets(rows["cdas-mix"], rows["random"])


def test_verdicts_name_each_variant_and_conclude() -> None:
    lines = aim.verdicts(list(_rows().values()), STEPS)
    verdicts = {line.split("**")[1]: line for line in lines if line.startswith("- **")}
    assert list(verdicts) == ["cdas-retire", "cdas-fast", "cdas-retire-fast", "cdas-mix"]
    assert verdicts["cdas-mix"].endswith("Meets the aim.")
    assert all(v.endswith("Does not meet the aim.") for k, v in verdicts.items() if k != "cdas-mix")
    assert "is met here by cdas-mix." in lines[-1]
    assert "128 rollouts a step (Random 64)" in verdicts["cdas-fast"]


def test_verdicts_need_the_variants_cdas_and_random() -> None:
    rows = _rows()
    assert aim.verdicts([rows["random"], rows["cdas"]], STEPS) == []
    assert aim.verdicts([rows["cdas-mix"], rows["cdas"]], STEPS) == []
