"""The experiment's pictures, as PNG files (matplotlib, headless Agg backend; ``cdas[sim]``).

- ``zero_gradient.png``: the share of groups with all-equal rewards per step, per strategy (the
  paper's Figure 5), mean over seeds with the seeds' range shaded;
- ``accuracy.png``: held-out accuracy against steps and against rollouts spent, with Random's
  final accuracy as a dashed line;
- ``gpu_hours.png``: cumulative GPU-hours (the twin's proxy) against steps (the paper's Figure 2b);
- ``competence.png``: per strategy (seed 0), the coordinator's competence C and the batch's
  difficulty band (10th-90th percentile of D, median dashed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cdas.sim.summary import group_runs, target_accuracy
from cdas.sim.trainer import StepRecord

COLORS = {
    "cdas": "#d62728",
    "random": "#7f7f7f",
    "prioritized": "#1f77b4",
    "curriculum": "#9467bd",
    "dynamic": "#2ca02c",
    "mopps": "#ff7f0e",
    "learnability": "#8c564b",
    "cdas-retire": "#e377c2",
    "cdas-fast": "#ff9896",
    "cdas-retire-fast": "#8b0000",
    "cdas-mix": "#bcbd22",
}
FILES = ("zero_gradient.png", "accuracy.png", "gpu_hours.png", "competence.png")


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def color(strategy: str) -> str:
    return COLORS.get(strategy, "#17becf")


def matrix(runs: dict[int, list[StepRecord]], attr: str, cumulative: bool = False) -> np.ndarray:
    rows = [np.array([getattr(r, attr) for r in recs], dtype=float) for recs in runs.values()]
    length = min(len(r) for r in rows)
    m = np.vstack([r[:length] for r in rows])
    return np.cumsum(m, axis=1) if cumulative else m


def band(ax: Any, x: np.ndarray, m: np.ndarray, strategy: str) -> None:
    ax.plot(x, m.mean(axis=0), color=color(strategy), label=strategy, linewidth=1.6)
    if m.shape[0] > 1:
        ax.fill_between(x, m.min(axis=0), m.max(axis=0), color=color(strategy), alpha=0.18)


def plot_all(records: Sequence[StepRecord], out: Path, title: str = "") -> list[Path]:
    """Write the four PNGs into ``out``; returns their paths."""
    return [
        zero_gradient(records, out / "zero_gradient.png", title),
        accuracy(records, out / "accuracy.png"),
        cost(
            records, out / "gpu_hours.png", "cumulative GPU-hours (twin's proxy)", "GPU time spent"
        ),
        competence(records, out / "competence.png"),
    ]


def zero_gradient(records: Sequence[StepRecord], path: Path, title: str = "") -> Path:
    """The share of groups with all-equal rewards per step, per strategy (Figure 5)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for strategy, seeds in group_runs(records).items():
        m = matrix(seeds, "zero_gradient")
        band(ax, np.arange(1, m.shape[1] + 1), m, strategy)
    ax.set(xlabel="step", ylabel="share of groups with zero gradient", ylim=(0, 1))
    ax.set_title(f"Zero-gradient share per step {title}".strip())
    ax.grid(alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    return save(fig, path, plt)


def accuracy(records: Sequence[StepRecord], path: Path) -> Path:
    """Held-out accuracy against steps and against rollouts spent, Random's final dashed."""
    plt = pyplot()
    target = target_accuracy(records)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    for strategy, seeds in group_runs(records).items():
        m = matrix(seeds, "accuracy") * 100
        steps = np.arange(1, m.shape[1] + 1)
        band(left, steps, m, strategy)
        spent = matrix(seeds, "rollouts", cumulative=True).mean(axis=0) / 1e6
        right.plot(spent, m.mean(axis=0), color=color(strategy), label=strategy, linewidth=1.6)
    for ax in (left, right):
        if not np.isnan(target):
            ax.axhline(target * 100, color="black", linestyle="--", linewidth=0.8)
        ax.grid(alpha=0.3)
        ax.set_ylabel("held-out accuracy (%)")
    left.set(xlabel="step", title="Held-out accuracy against steps")
    right.set(xlabel="rollouts spent (millions, log scale)", xscale="log")
    right.set_title("Held-out accuracy against rollouts spent")
    left.legend(ncol=2, fontsize=8)
    return save(fig, path, plt)


def cost(
    records: Sequence[StepRecord], path: Path, label: str, title: str, scale: float = 1.0
) -> Path:
    """The cumulative ``cost`` (times ``scale``) against steps (the paper's Figure 2b)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for strategy, seeds in group_runs(records).items():
        m = matrix(seeds, "cost", cumulative=True) * scale
        band(ax, np.arange(1, m.shape[1] + 1), m, strategy)
    ax.set(xlabel="step", ylabel=label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    return save(fig, path, plt)


def competence(records: Sequence[StepRecord], path: Path) -> Path:
    """Per strategy (seed 0), the competence C and the batch's difficulty band."""
    plt = pyplot()
    runs = group_runs(records)
    names = list(runs)
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 3.0 * rows), dpi=110, squeeze=False, sharey=True
    )
    for ax, strategy in zip(axes.flat, names, strict=False):
        recs = runs[strategy][min(runs[strategy])]
        x = np.array([r.step for r in recs])
        low = np.array([r.band_low for r in recs])
        mid = np.array([r.band_mid for r in recs])
        high = np.array([r.band_high for r in recs])
        ax.fill_between(x, low, high, color=color(strategy), alpha=0.25, label="batch D, 10-90%")
        ax.plot(x, mid, color=color(strategy), linestyle="--", linewidth=1, label="batch D, median")
        ax.plot(x, [r.competence for r in recs], color="black", linewidth=1.4, label="competence C")
        ax.set_title(strategy, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes[0][0].set_ylabel("difficulty D / competence C")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Competence and the batch's difficulty band (seed 0)")
    return save(fig, path, plt)


def save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
