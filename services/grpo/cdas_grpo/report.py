"""What an experiment leaves behind: ``steps.csv``, ``rungs.csv`` (per run and rung: its share of
the prompts served, held-out accuracy before and after), ``summary.csv`` / ``summary.md``, the warm
start's report, the settings, and the plots.

The table is the simulator's (``cdas.sim.summary``: mean +- std over seeds, steps, rollouts and
time to Random's final accuracy on the same seed), with the cost shown as measured seconds. The
plots are the simulator's zero-gradient and competence figures, plus two of a real policy's:
held-out accuracy against steps, rollouts and seconds, and the policy's entropy with the gap
between training prompts and held-out ones (what separates sharpening from memorisation).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from cdas.sim import plots, summary
from cdas.sim.experiment import write_csv
from cdas_grpo.records import GrpoStep
from cdas_grpo.run import RungRow
from cdas_grpo.settings import Settings
from cdas_grpo.warmstart import WarmReport


def start_line(warm: WarmReport) -> str:
    return (
        f"warm start: held-out accuracy {warm.heldout_accuracy:.1%}; training prompts "
        f"always solved {warm.always:.0%}, never solved {warm.never:.0%}, in between "
        f"{warm.between:.0%} (G samples each)"
    )


def save(
    records: Sequence[GrpoStep],
    rungs: Sequence[RungRow],
    warm: WarmReport,
    settings: Settings,
    out: Path,
) -> tuple[list[summary.Row], list[Path]]:
    """Write everything into ``out``; returns the table's rows and the plots' paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = summary.summarize(records)
    write_csv(records, out / "steps.csv")
    with (out / "rungs.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[f.name for f in fields(RungRow)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in rungs)
    summary.write_csv(rows, out / "summary.csv", summary.SECONDS)
    (out / "summary.md").write_text(
        f"{start_line(warm)}\n\n{summary.markdown(rows, summary.SECONDS)}"
    )
    (out / "settings.json").write_text(json.dumps(settings.to_dict(), indent=1) + "\n")
    (out / "warmstart.json").write_text(json.dumps(asdict(warm), indent=1) + "\n")
    pictures = [
        plots.zero_gradient(records, out / "zero_gradient.png", "(real GRPO)"),
        accuracy(records, warm, out / "accuracy.png"),
        dynamics(records, warm, out / "dynamics.png"),
        plots.competence(records, out / "competence.png"),
    ]
    return rows, pictures


def read_steps(path: Path) -> list[GrpoStep]:
    """The records ``steps.csv`` holds."""
    with path.open(newline="") as src:
        return [GrpoStep(**_typed(row)) for row in csv.DictReader(src)]


def read_rungs(path: Path) -> list[RungRow]:
    """The rows ``rungs.csv`` holds."""
    with path.open(newline="") as src:
        return [
            RungRow(
                row["strategy"],
                int(row["seed"]),
                row["rung"],
                float(row["served"]),
                float(row["start"]),
                float(row["end"]),
            )
            for row in csv.DictReader(src)
        ]


def _typed(row: dict[str, str]) -> dict[str, Any]:
    ints = {"seed", "step", "rounds", "rollouts", "trained"}
    return {
        k: v if k == "strategy" else (int(v) if k in ints else float(v)) for k, v in row.items()
    }


def _with_start(m: np.ndarray, start: float) -> np.ndarray:
    return np.hstack([np.full((m.shape[0], 1), start), m])


def accuracy(records: Sequence[GrpoStep], warm: WarmReport, path: Path) -> Path:
    """Held-out accuracy (from the warm start, step 0) against steps, rollouts and seconds."""
    plt = plots.pyplot()
    target = summary.target_accuracy(records)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), dpi=110)
    for strategy, seeds in summary.group_runs(records).items():
        m = _with_start(plots.matrix(seeds, "accuracy"), warm.heldout_accuracy) * 100
        plots.band(axes[0], np.arange(m.shape[1]), m, strategy)
        spent = _with_start(plots.matrix(seeds, "rollouts", cumulative=True), 0).mean(axis=0)
        secs = _with_start(plots.matrix(seeds, "seconds", cumulative=True), 0).mean(axis=0)
        for ax, x in ((axes[1], spent / 1e3), (axes[2], secs)):
            ax.plot(x, m.mean(axis=0), color=plots.color(strategy), label=strategy, linewidth=1.6)
    for ax in axes:
        if not np.isnan(target):
            ax.axhline(target * 100, color="black", linestyle="--", linewidth=0.8)
        ax.grid(alpha=0.3)
        ax.set_ylabel("held-out accuracy (%)")
    axes[0].set(xlabel="step", title="Held-out accuracy against steps")
    axes[1].set(xlabel="rollouts spent (thousands)", title="... against rollouts")
    axes[2].set(xlabel="seconds spent", title="... against wall-clock time")
    axes[0].legend(ncol=2, fontsize=8)
    return plots.save(fig, path, plt)


def dynamics(records: Sequence[GrpoStep], warm: WarmReport, path: Path) -> Path:
    """Per step: the policy's entropy, and training-probe accuracy minus held-out accuracy."""
    plt = plots.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3), dpi=110)
    for strategy, seeds in summary.group_runs(records).items():
        entropy = plots.matrix(seeds, "entropy")
        plots.band(left, np.arange(1, entropy.shape[1] + 1), entropy, strategy)
        gap = plots.matrix(seeds, "train_accuracy") - plots.matrix(seeds, "accuracy")
        gap = _with_start(gap, warm.train_accuracy - warm.heldout_accuracy) * 100
        plots.band(right, np.arange(gap.shape[1]), gap, strategy)
    left.set(xlabel="step", ylabel="nats per token", title="Entropy of the trained rollouts")
    right.set(
        xlabel="step",
        ylabel="points",
        title="Training-prompt accuracy minus held-out accuracy",
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(ncol=2, fontsize=8)
    return plots.save(fig, path, plt)
