"""A ``cdas grpo`` output directory made by the twin itself, for the tests of the real-run
validation (``cdas.sim.realrun``): its answers are known, since the twin that made it can be
asked again."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from cdas.sim import calibrate, realrun
from cdas.sim.twin import TwinParams

STEPS = 12
MADE_BY = calibrate.START.with_(prompts=192, heldout=128, batch=16, heldout_shift=0.0)
"""The parameters the fake "real" runs are made with."""


def write_run(
    directory: Path, params: TwinParams, arms: tuple[str, ...] = ("random", "cdas")
) -> Path:
    """A ``cdas grpo`` output directory whose runs are the twin's own (seeds ``realrun.SEEDS``)."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = {
        "train_prompts": params.prompts,
        "heldout_prompts": params.heldout,
        "batch": params.batch,
        "group": params.group,
        "steps": STEPS,
        "probe": 64,
    }
    (directory / "settings.json").write_text(json.dumps(settings))
    rows = []
    warm: dict[str, list[float]] = {
        "always": [],
        "never": [],
        "heldout_accuracy": [],
        "train_accuracy": [],
    }
    for arm in arms:
        for seed in realrun.SEEDS:
            run = realrun.twin_run(params, arm, seed, STEPS, 64)
            if arm == "random":
                warm["always"].append(run.always)
                warm["never"].append(run.never)
                warm["heldout_accuracy"].append(run.accuracy0)
                warm["train_accuracy"].append(run.train_accuracy[0])
            for record, probe in zip(run.records, run.train_accuracy[1:], strict=True):
                rows.append(
                    {
                        "strategy": arm,
                        "seed": seed,
                        "step": record.step,
                        "rounds": record.rounds,
                        "rollouts": record.rollouts,
                        "trained": record.trained,
                        "zero_gradient": record.zero_gradient,
                        "accuracy": record.accuracy,
                        "train_accuracy": probe,
                    }
                )
    report = {"key": "fake", **{k: float(np.mean(v)) for k, v in warm.items()}}
    (directory / "warmstart.json").write_text(json.dumps(report))
    rows.reverse()  # the reader puts each run's rows in step order itself
    with (directory / "steps.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return directory
