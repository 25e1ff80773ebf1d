"""The experiment harness: every strategy x every seed, trained on the twin through one coordinator.

Each (strategy, seed) gets its own run, ``{prefix}-{strategy}-s{seed}``, seeded with ``seed``, and
its own twin built from the same ``seed``, so every strategy faces the same world (difficulties,
held-out set) and only the prompts chosen differ. A run of that name left by an earlier experiment
is deleted first: the prefix marks the runs as the experiment's own.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cdas.core.api import Runs
from cdas.core.errors import RunNotFoundError
from cdas.sim import arms, summary
from cdas.sim.trainer import SamplingClient, StepRecord, train
from cdas.sim.twin import Twin, TwinParams

STRATEGIES = ("cdas", "random", "prioritized", "curriculum", "dynamic", "mopps", "learnability")
ROUNDS = frozenset({"dynamic"})
"""Strategies whose trainer refills a step in rounds (DAPO dynamic sampling)."""


class ExperimentClient(SamplingClient, Runs, Protocol):
    """A coordinator the harness can create and delete runs on (``cdas.core.api``)."""


@dataclass
class Experiment:
    """What to run: strategies, seeds (0..seeds-1), steps, and the twin's parameters."""

    strategies: Sequence[str] = STRATEGIES
    seeds: int = 3
    steps: int = 110
    params: TwinParams = field(default_factory=TwinParams)
    band_sample: int = 32
    prefix: str = "sim"
    strategy_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    prompt_ids: Sequence[str] | None = None
    """register these ids (a dataset's row indexes "0".."N-1") instead of a count"""

    def run_id(self, strategy: str, seed: int) -> str:
        return f"{self.prefix}-{strategy}-s{seed}"

    def total_steps(self) -> int:
        return len(self.strategies) * self.seeds * self.steps


def start_run(client: ExperimentClient, experiment: Experiment, strategy: str, seed: int) -> Twin:
    """Create the (arm, seed) run afresh and the twin that goes with it. ``strategy`` is an arm's
    label (``cdas.sim.arms``): a strategy, or a named CDAS variant with its parameters."""
    twin = Twin(experiment.params, seed)
    run_id = experiment.run_id(strategy, seed)
    with contextlib.suppress(RunNotFoundError):
        client.delete_run(run_id)
    name, params = arms.resolve(strategy)
    labels = [float(v) for v in twin.labels] if name == "curriculum" else None
    client.put_run(
        run_id,
        strategy=name,
        params={**params, **experiment.strategy_params.get(strategy, {})},
        seed=seed,
        prompts=(
            list(experiment.prompt_ids)
            if experiment.prompt_ids is not None
            else experiment.params.prompts
        ),
        labels=labels,
    )
    return twin


def train_arm(
    client: ExperimentClient,
    experiment: Experiment,
    twin: Twin,
    strategy: str,
    on_step: Callable[[StepRecord], None] | None,
) -> list[StepRecord]:
    """Train the arm ``strategy``'s run started by ``start_run``: the arm's rounds (DAPO's for
    dynamic sampling), the experiment's steps and band sample, records named by the arm."""
    return train(
        client,
        experiment.run_id(strategy, twin.seed),
        twin,
        experiment.steps,
        rounds=arms.resolve(strategy)[0] in ROUNDS,
        band_sample=experiment.band_sample,
        on_step=on_step,
        label=strategy,
    )


def run(
    client: ExperimentClient,
    experiment: Experiment,
    on_step: Callable[[StepRecord], None] | None = None,
) -> list[StepRecord]:
    """Every (strategy, seed), one after the other; the records of all their steps."""
    records: list[StepRecord] = []
    for strategy in experiment.strategies:
        for seed in range(experiment.seeds):
            twin = start_run(client, experiment, strategy, seed)
            records += train_arm(client, experiment, twin, strategy, on_step)
    return records


def run_parallel(
    client: ExperimentClient,
    experiment: Experiment,
    on_step: Callable[[StepRecord], None] | None = None,
) -> list[StepRecord]:
    """Every (strategy, seed) at once, one thread each, so that their runs train side by side (a
    dashboard sees them all move). The records equal ``run``'s: runs share no state."""
    from concurrent.futures import ThreadPoolExecutor

    pairs = [(s, seed) for s in experiment.strategies for seed in range(experiment.seeds)]
    twins = {pair: start_run(client, experiment, *pair) for pair in pairs}

    def one(pair: tuple[str, int]) -> list[StepRecord]:
        return train_arm(client, experiment, twins[pair], pair[0], on_step)

    with ThreadPoolExecutor(max(1, len(pairs))) as pool:
        return [r for records in pool.map(one, pairs) for r in records]


def write_csv(records: Sequence[StepRecord], path: Path) -> None:
    """One row per (strategy, seed, step), every column of the records' class (``StepRecord``
    or a subclass with more columns)."""
    kind = type(records[0]) if records else StepRecord
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=kind.columns())
        writer.writeheader()
        for r in records:
            writer.writerow(r.row())


def save(
    records: Sequence[StepRecord], out: Path, title: str = ""
) -> tuple[list[summary.Row], list[Path]]:
    """Everything an experiment leaves behind in ``out``: ``steps.csv``, ``summary.csv``,
    ``summary.md`` and the plots. Returns the table's rows and the pictures' paths."""
    from cdas.sim import plots

    out.mkdir(parents=True, exist_ok=True)
    rows = summary.summarize(records)
    write_csv(records, out / "steps.csv")
    summary.write_csv(rows, out / "summary.csv")
    (out / "summary.md").write_text(summary.markdown(rows))
    return rows, plots.plot_all(records, out, title)


def read_csv(path: Path) -> list[StepRecord]:
    """The records ``write_csv`` wrote."""
    kinds = {"strategy": str, "seed": int, "step": int, "rounds": int, "rollouts": int}
    kinds["trained"] = int
    with path.open(newline="") as src:
        return [
            StepRecord(**{k: kinds.get(k, float)(v) for k, v in row.items()})
            for row in csv.DictReader(src)
        ]
