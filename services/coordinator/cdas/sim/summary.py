"""The experiment's table: per strategy, each figure as mean +- standard deviation over seeds.

The common yardstick is Random's final accuracy on the same seed (a seed fixes the twin's world,
so every strategy of a seed faces the same prompts and held-out set; the comparison is paired):
for every strategy and seed, the first step whose held-out accuracy reaches it, and the rollouts
and GPU-hours spent by then. A seed that never reaches it counts as not reached, and the table
says how many did.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdas.sim.trainer import StepRecord


@dataclass(frozen=True)
class Spread:
    """A figure over seeds: mean, standard deviation (ddof 0), and how many seeds have it."""

    mean: float
    std: float
    count: int
    seeds: int

    @classmethod
    def of(cls, values: Sequence[float], seeds: int) -> Spread:
        have = [v for v in values if not math.isnan(v)]
        if not have:
            return cls(math.nan, math.nan, 0, seeds)
        return cls(float(np.mean(have)), float(np.std(have)), len(have), seeds)

    def text(self, digits: int = 3, scale: float = 1.0) -> str:
        if self.count == 0:
            return "not reached"
        out = f"{self.mean * scale:,.{digits}f} ± {self.std * scale:,.{digits}f}"
        if self.count < self.seeds:
            out += f" ({self.count} of {self.seeds} seeds)"
        return out


@dataclass(frozen=True)
class Row:
    strategy: str
    zero_gradient: Spread
    final_accuracy: Spread
    steps_to_target: Spread
    rollouts_to_target: Spread
    gpu_hours_to_target: Spread
    rollouts: Spread
    gpu_hours: Spread


def group_runs(records: Sequence[StepRecord]) -> dict[str, dict[int, list[StepRecord]]]:
    """strategy -> seed -> that run's records in step order."""
    runs: dict[str, dict[int, list[StepRecord]]] = defaultdict(dict)
    for r in records:
        runs[r.strategy].setdefault(r.seed, []).append(r)
    for seeds in runs.values():
        for recs in seeds.values():
            recs.sort(key=lambda r: r.step)
    return dict(runs)


def targets(records: Sequence[StepRecord], reference: str = "random") -> dict[int, float]:
    """The yardstick per seed: the ``reference`` strategy's final accuracy on that seed."""
    runs = group_runs(records).get(reference, {})
    return {seed: recs[-1].accuracy for seed, recs in runs.items()}


def target_accuracy(records: Sequence[StepRecord], reference: str = "random") -> float:
    """The yardstick averaged over seeds (for display)."""
    values = list(targets(records, reference).values())
    return float(np.mean(values)) if values else math.nan


def reach(recs: Sequence[StepRecord], target: float) -> tuple[float, float, float]:
    """(step, cumulative rollouts, cumulative GPU-hours) when accuracy first reaches ``target``
    (NaNs if it never does). O(steps)."""
    rollouts = 0
    hours = 0.0
    for r in recs:
        rollouts += r.rollouts
        hours += r.cost
        if r.accuracy >= target - 1e-12:
            return float(r.step), float(rollouts), hours
    return math.nan, math.nan, math.nan


def summarize(records: Sequence[StepRecord], reference: str = "random") -> list[Row]:
    """One row per strategy, in the order strategies first appear in ``records``."""
    goal = targets(records, reference)
    rows = []
    for strategy, runs in group_runs(records).items():
        n = len(runs)
        reached = [reach(recs, goal.get(seed, math.nan)) for seed, recs in runs.items()]
        rows.append(
            Row(
                strategy=strategy,
                zero_gradient=Spread.of(
                    [float(np.mean([r.zero_gradient for r in recs])) for recs in runs.values()], n
                ),
                final_accuracy=Spread.of([recs[-1].accuracy for recs in runs.values()], n),
                steps_to_target=Spread.of([x[0] for x in reached], n),
                rollouts_to_target=Spread.of([x[1] for x in reached], n),
                gpu_hours_to_target=Spread.of([x[2] for x in reached], n),
                rollouts=Spread.of(
                    [float(sum(r.rollouts for r in recs)) for recs in runs.values()], n
                ),
                gpu_hours=Spread.of([sum(r.cost for r in recs) for recs in runs.values()], n),
            )
        )
    return rows


@dataclass(frozen=True)
class CostUnit:
    """How a record's ``cost`` (hours of device time) is shown: the twin's GPU-hours proxy, or
    the wall-clock seconds a real run measured."""

    column: str
    """the CSV columns' stem"""
    header: str
    """the table's word for it"""
    scale: float
    """from hours to the unit"""


GPU_HOURS = CostUnit("gpu_hours", "GPU-hours", 1.0)
SECONDS = CostUnit("seconds", "seconds", 3600.0)


def headers(unit: CostUnit = GPU_HOURS) -> tuple[str, ...]:
    return (
        "strategy",
        "mean zero-gradient share",
        "final accuracy (%)",
        "steps to Random's final accuracy",
        "rollouts to it (k)",
        f"{unit.header} to it",
        "rollouts in all (k)",
        f"{unit.header} in all",
    )


def cells(row: Row, unit: CostUnit = GPU_HOURS) -> list[str]:
    return [
        row.strategy,
        row.zero_gradient.text(3),
        row.final_accuracy.text(2, 100),
        row.steps_to_target.text(1),
        row.rollouts_to_target.text(0, 1e-3),
        row.gpu_hours_to_target.text(0, unit.scale),
        row.rollouts.text(0, 1e-3),
        row.gpu_hours.text(0, unit.scale),
    ]


def markdown(rows: Sequence[Row], unit: CostUnit = GPU_HOURS) -> str:
    names = headers(unit)
    lines = ["| " + " | ".join(names) + " |", "|" + " --- |" * len(names)]
    lines += ["| " + " | ".join(cells(r, unit)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def text_table(rows: Sequence[Row], unit: CostUnit | None = None) -> str:
    """The table for a terminal: the first five columns, aligned (and the cost to Random's
    final accuracy when ``unit`` is given)."""
    head = ["strategy", "zero-grad share", "final acc %", "steps to Random's", "rollouts to it"]
    width = 5
    if unit is not None:
        head.append(f"{unit.header} to it")
        width = 6
    body = [cells(r, unit or GPU_HOURS)[:width] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [head, *body]) + "\n"


def write_csv(rows: Sequence[Row], path: Path, unit: CostUnit = GPU_HOURS) -> None:
    """Machine-readable: mean, std and seeds-reached for every figure (costs in ``unit``)."""
    figures = (
        "zero_gradient",
        "final_accuracy",
        "steps_to_target",
        "rollouts_to_target",
        "gpu_hours_to_target",
        "rollouts",
        "gpu_hours",
    )
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        names = [f.replace("gpu_hours", unit.column) for f in figures]
        writer.writerow(["strategy"] + [f"{f}_{k}" for f in names for k in ("mean", "std", "n")])
        for row in rows:
            line: list[object] = [row.strategy]
            for f in figures:
                s: Spread = getattr(row, f)
                scale = unit.scale if f.startswith("gpu_hours") else 1.0
                line += [s.mean * scale, s.std * scale, s.count]
            writer.writerow(line)
