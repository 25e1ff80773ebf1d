"""The twin validated on real RL: fitted to ``cdas grpo``'s Random run, it predicts the others.

The paper's figures are one test of the twin (``cdas.sim.calibrate``); this is a second,
independent one, on a run anyone can repeat (``make grpo-results`` writes ``docs/grpo/``).

Protocol, fixed on 2026-12-05 before any fit or prediction of the twin at this scale was made
(the real runs themselves were made and published the day before, so their outcome was known; the
twin and this protocol were not changed after seeing its predictions):

  1. The twin at the run's scale (``scaled``): N, the held-out set, B, G and the steps from the
     run's ``settings.json``; every other parameter starts at ``calibrate.START``.
  2. Targets (``targets``), Random's only, each the mean over the run's seeds:
     - the zero-gradient share at steps 5, 25, 50, 75 and 98 (read as the calibration reads it, the
       mean over +-2 steps);
     - the held-out accuracy at the warm start and at steps 25, 50, 75 and 100;
     - the accuracy on the run's fixed probe of training prompts at the warm start and at steps
       50 and 100.
     Those are the CPU preset's 100 steps; a run of another length is read at the same fractions
     of it (``at``). This is what tells memorisation from sharpening: memorisation lifts the
       prompts trained on above the held-out ones; sharpening moves both alike;
     - the warm start's shares of training prompts solved by all G samples and by none.
     The policy's entropy is measured too but is not a target: it is over tokens, the twin's over
     right and wrong, and the two are not the same quantity.
  3. Loss: ``calibrate``'s (squared misses in units of 0.01, plus the pull toward the priors), with
     the priors of ``calibrate.PRIORS`` except ``heldout_shift``, whose prior is 0 here: the
     held-out set is the training set's mix of rungs. Nelder-Mead from the start, 200 iterations,
     twin seeds 0..3 (``SEEDS``).
  4. Prediction: every other arm of the run, on the fitted twin unchanged, same seeds. For each:
     the mean zero-gradient share over all steps, the held-out accuracy at the middle step and at
     the last, against the measured ones. Tolerances, declared with this protocol: 0.05 for the
     zero-gradient share and 2 points for an accuracy (about the spread between the real run's
     seeds of one arm).

The twin has no forgetting: its ability only grows. So where a real policy loses what it no
longer practises, the twin will miss, and the table says so.

Cost: one fit, O(iterations x len(SEEDS) x steps x B), about a minute or two at the CPU preset.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import cdas
from cdas.sim import calibrate
from cdas.sim.experiment import Experiment, start_run, train_arm
from cdas.sim.trainer import StepRecord
from cdas.sim.twin import Twin, TwinParams

SEEDS = (0, 1, 2, 3)
ITERATIONS = 200
PRIORS = {**calibrate.PRIORS, "heldout_shift": 0.0}
ZERO_GRADIENT_AT = (0.05, 0.25, 0.5, 0.75, 0.98)
ACCURACY_AT = (0.0, 0.25, 0.5, 0.75, 1.0)
PROBE_AT = (0.0, 0.5, 1.0)
"""Where the targets are read, as fractions of the run (steps 5, 25, ... of the CPU preset)."""
ZERO_GRADIENT_TOLERANCE = 0.05
ACCURACY_TOLERANCE = 0.02


@dataclass(frozen=True)
class Figure:
    """One measured figure of the real run: ``name`` is ``zero_gradient``, ``accuracy``,
    ``train_accuracy``, ``always`` or ``never`` (the last two at the warm start, step 0)."""

    name: str
    step: int
    value: float


FILES = ("steps.csv", "settings.json", "warmstart.json")
"""What ``cdas grpo --out`` writes that the validation reads (the warm start's report under the
name that is committed, not its key-named copy)."""


@dataclass(frozen=True)
class Measured:
    """A ``cdas grpo`` output directory, read."""

    directory: Path
    settings: dict[str, object]
    warm: dict[str, float]
    steps: dict[str, dict[int, list[dict[str, float]]]]
    """arm -> seed -> that run's per-step rows, in step order"""

    @classmethod
    def load(cls, directory: Path) -> Measured:
        """Read ``settings.json``, the warm start's report ``warmstart.json`` and ``steps.csv``;
        missing files are one ``FileNotFoundError`` naming each."""
        missing = [name for name in FILES if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{directory}: " + ", ".join(f"no {name}" for name in missing) + " (give the "
                "--out directory of a `cdas grpo` run, such as docs/grpo)"
            )
        settings = json.loads((directory / "settings.json").read_text())
        report = json.loads((directory / "warmstart.json").read_text())
        warm = {k: v for k, v in report.items() if isinstance(v, float)}
        steps: dict[str, dict[int, list[dict[str, float]]]] = {}
        with (directory / "steps.csv").open() as f:
            for row in csv.DictReader(f):
                arm, seed = row.pop("strategy"), int(row["seed"])
                values = {k: float(v) if v != "" else math.nan for k, v in row.items()}
                steps.setdefault(arm, {}).setdefault(seed, []).append(values)
        for runs in steps.values():
            for rows in runs.values():
                rows.sort(key=lambda r: r["step"])
        return cls(directory, settings, warm, steps)

    def records(self) -> list[StepRecord]:
        """The real run's steps as the twin's records (the columns they share), so that the
        twin's summaries and criteria read both alike."""
        names = [f for f in StepRecord.columns() if f not in ("strategy", "seed", "step")]
        out = []
        for arm, runs in self.steps.items():
            for seed, rows in runs.items():
                for row in rows:
                    values = {n: row.get(n, math.nan) for n in names}
                    ints = {n: int(values[n]) for n in ("rounds", "rollouts", "trained")}
                    out.append(
                        StepRecord(arm, seed, int(row["step"]), **{**values, **ints})  # type: ignore[arg-type]
                    )
        return out

    @property
    def last_step(self) -> int:
        return int(str(self.settings["steps"]))


def measured_figure(run: Measured, arm: str, name: str, step: int) -> float:
    """``name`` at ``step`` of the real ``arm``, the mean over its seeds."""
    if step == 0:
        key = {"accuracy": "heldout_accuracy", "train_accuracy": "train_accuracy"}.get(name, name)
        return float(run.warm[key])
    rows = run.steps[arm].values()
    if name == "zero_gradient":
        return float(
            np.mean([calibrate.window([x["zero_gradient"] for x in r], step) for r in rows])
        )
    if name == "mean_zero_gradient":
        return float(np.mean([np.mean([x["zero_gradient"] for x in r]) for r in rows]))
    return float(np.mean([r[step - 1][name] for r in rows]))


def at(fraction: float, steps: int) -> int:
    """The step ``fraction`` of the way through a run of ``steps`` (0: the warm start)."""
    return round(fraction * steps)


def targets(run: Measured) -> list[Figure]:
    """Random's figures the fit meets (step 2 of the protocol)."""
    n = run.last_step
    out = [Figure(name, 0, run.warm[name]) for name in ("always", "never")]
    for name, fractions in (
        ("zero_gradient", ZERO_GRADIENT_AT),
        ("accuracy", ACCURACY_AT),
        ("train_accuracy", PROBE_AT),
    ):
        for fraction in fractions:
            step = max(at(fraction, n), 1 if name == "zero_gradient" else 0)
            out.append(Figure(name, step, measured_figure(run, "random", name, step)))
    return out


def scaled(run: Measured, base: TwinParams = calibrate.START) -> TwinParams:
    """``base`` at the real run's scale (protocol step 1)."""
    s = run.settings
    return base.with_(
        prompts=int(str(s["train_prompts"])),
        heldout=int(str(s["heldout_prompts"])),
        batch=int(str(s["batch"])),
        group=int(str(s["group"])),
    )


@dataclass
class TwinRun:
    """One arm on the twin, one seed: its records, and the figures the records do not hold."""

    records: list[StepRecord]
    accuracy0: float
    train_accuracy: list[float]
    """the probe's accuracy at the warm start (index 0) and after each step"""
    always: float
    never: float


def twin_run(params: TwinParams, arm: str, seed: int, steps: int, probe: int) -> TwinRun:
    """``arm`` on the twin as ``cdas simulate`` runs it, with the probe's accuracy (the first
    ``probe`` training prompts: the twin's prompts are exchangeable, so they are a random sample)
    read after every step."""
    experiment = Experiment(
        strategies=(arm,), steps=steps, params=params, band_sample=0, prefix="real"
    )
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    twin: Twin = start_run(coordinator, experiment, arm, seed)
    ids = np.arange(min(probe, params.prompts), dtype=np.int64)
    g = params.group
    p0 = twin.pass_probability(np.arange(params.prompts, dtype=np.int64))
    train = [float(np.mean(twin.pass_probability(ids)))]
    accuracy0 = twin.accuracy()
    records = train_arm(
        coordinator,
        experiment,
        twin,
        arm,
        lambda _: train.append(float(np.mean(twin.pass_probability(ids)))),
    )
    return TwinRun(records, accuracy0, train, float(np.mean(p0**g)), float(np.mean((1 - p0) ** g)))


def twin_figure(runs: Sequence[TwinRun], name: str, step: int) -> float:
    """``name`` at ``step`` on the twin, the mean over ``runs`` (one per seed)."""
    if name == "always":
        return float(np.mean([r.always for r in runs]))
    if name == "never":
        return float(np.mean([r.never for r in runs]))
    if name == "train_accuracy":
        return float(np.mean([r.train_accuracy[step] for r in runs]))
    if name == "mean_zero_gradient":
        return float(np.mean([np.mean([x.zero_gradient for x in r.records]) for r in runs]))
    target = calibrate.Target(name, step, math.nan, 0.0)
    return float(np.mean([calibrate.observe(r.records, r.accuracy0, target) for r in runs]))


def _runs(params: TwinParams, arm: str, run: Measured) -> list[TwinRun]:
    probe = int(str(run.settings.get("probe", 256)))
    return [twin_run(params, arm, seed, run.last_step, probe) for seed in SEEDS]


def loss(params: TwinParams, run: Measured, figures: Sequence[Figure]) -> float:
    """Protocol step 3: squared misses of Random's figures in 0.01 units, plus the priors' pull."""
    if params.unsolvable + params.solved >= 0.95:
        return 1e9
    runs = _runs(params, "random", run)
    miss = sum(((twin_figure(runs, f.name, f.step) - f.value) / 0.01) ** 2 for f in figures)
    return float(miss + calibrate.pull(params, PRIORS))


def fit(
    run: Measured,
    iterations: int = ITERATIONS,
    on_iteration: Callable[[int, float], None] | None = None,
) -> tuple[TwinParams, float]:
    """The twin fitted to the real Random run (protocol steps 1-3), and its loss."""
    base = scaled(run).with_(heldout_shift=PRIORS["heldout_shift"])
    figures = targets(run)
    x, value = calibrate.nelder_mead(
        lambda v: loss(calibrate.decode(base, v), run, figures),
        calibrate.encode(base),
        iterations=iterations,
        on_iteration=on_iteration,
    )
    return calibrate.decode(base, x), value


@dataclass(frozen=True)
class Check:
    """One figure: measured in the real run, and the fitted twin's value for it."""

    arm: str
    name: str
    step: int
    measured: float
    twin: float
    tolerance: float | None
    """None for a fit target (the fit's input), else the declared tolerance of a prediction"""

    @property
    def inside(self) -> bool:
        return self.tolerance is not None and abs(self.twin - self.measured) <= self.tolerance


def validate(run: Measured, params: TwinParams) -> list[Check]:
    """Random's targets against the fitted twin, then every other arm predicted (step 4)."""
    checks: list[Check] = []
    random_runs = _runs(params, "random", run)
    for f in targets(run):
        checks.append(
            Check("random", f.name, f.step, f.value, twin_figure(random_runs, f.name, f.step), None)
        )
    middle, last = run.last_step // 2, run.last_step
    for arm in run.steps:
        if arm == "random":
            continue
        runs = _runs(params, arm, run)
        for name, step, tolerance in (
            ("mean_zero_gradient", last, ZERO_GRADIENT_TOLERANCE),
            ("accuracy", middle, ACCURACY_TOLERANCE),
            ("accuracy", last, ACCURACY_TOLERANCE),
        ):
            checks.append(
                Check(
                    arm,
                    name,
                    step,
                    measured_figure(run, arm, name, step),
                    twin_figure(runs, name, step),
                    tolerance,
                )
            )
    return checks
