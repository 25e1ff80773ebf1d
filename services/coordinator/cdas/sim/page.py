"""The results page (``docs/results.md``): written whole by ``cdas simulate --page`` (``make
results``), never by hand, so that every number on it comes from the committed command.

Sections: how it was made; the calibration (Random against the paper's figures, the only ones the
twin was fitted to); the table and the plots; the three headline figures next to the paper's; each
prediction against the paper's figure, with whether the direction agrees; a sensitivity check of
the parameter the CDAS prediction hinges on; and the twin's parameters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import cdas
from cdas.sim import calibrate, paper, summary
from cdas.sim.experiment import Experiment, run
from cdas.sim.trainer import StepRecord
from cdas.sim.twin import Twin, describe_params

SENSITIVITY = (0.0, 0.1, 0.2)
"""``specific`` values tried against the calibrated one (CDAS and Random, same seeds)."""


def nanmean(values: Sequence[float]) -> float:
    """The mean of the values that are not NaN (NaN when none is)."""
    have = [v for v in values if not math.isnan(v)]
    return float(np.mean(have)) if have else math.nan


def _at(runs: dict[int, list[StepRecord]], step: int, attr: str) -> float:
    return nanmean([getattr(recs[step - 1], attr) for recs in runs.values() if len(recs) >= step])


def _window(runs: dict[int, list[StepRecord]], step: int) -> float:
    """The zero-gradient share at ``step`` as the calibration reads it, averaged over seeds."""
    target = calibrate.Target("zero_gradient", step, math.nan, 0.0)
    return nanmean(
        [calibrate.observe(recs, math.nan, target) for recs in runs.values() if len(recs) >= step]
    )


def fmt_number(value: float, digits: int = 2, scale: float = 1.0) -> str:
    """``value`` x ``scale`` with thousands separators, or "n/a" for NaN."""
    return "n/a" if math.isnan(value) else f"{value * scale:,.{digits}f}"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _direction(twin_a: float, twin_b: float, paper_a: float, paper_b: float) -> str:
    if any(math.isnan(v) for v in (twin_a, twin_b)):
        return "n/a"
    if twin_a == twin_b:
        return "tie in the twin"
    return "yes" if (twin_a < twin_b) == (paper_a < paper_b) else "**no**"


def headline(records: Sequence[StepRecord]) -> list[str]:
    """The three figures the issue asks for, each next to the paper's."""
    runs = summary.group_runs(records)
    lines = []
    cdas_runs, dyn, rnd = runs.get("cdas"), runs.get("dynamic"), runs.get("random")
    if cdas_runs:
        zg = nanmean(
            [float(np.mean([r.zero_gradient for r in recs])) for recs in cdas_runs.values()]
        )
        lines.append(
            f"- **CDAS's mean zero-gradient share**: {zg:.3f} over the run (twin), "
            f"{fmt_number(_window(cdas_runs, 30))} at step 30 and "
            f"{fmt_number(_window(cdas_runs, 110))} at step 110; "
            f"paper: {paper.ZERO_GRADIENT['cdas'][30]:.2f} and "
            f"{paper.ZERO_GRADIENT['cdas'][110]:.2f} (Random's: twin {_rnd_zg(rnd)}, "
            "paper 0.65 and 0.75)."
        )
    target = summary.target_accuracy(records)
    goal = summary.targets(records)
    if cdas_runs and rnd:
        reached = [summary.reach(recs, goal[seed])[0] for seed, recs in cdas_runs.items()]
        got = [r for r in reached if not math.isnan(r)]
        steps = rnd[min(rnd)][-1].step
        what = (
            f"step {nanmean(got):.0f} ({nanmean(got) / steps:.0%} of Random's {steps} steps; "
            f"{len(got)} of {len(reached)} seeds)"
            if got
            else f"not within {steps} steps"
        )
        lines.append(
            f"- **Steps CDAS needs to reach Random's final accuracy** (on the same seed; "
            f"{target * 100:.2f}% on average): "
            f"{what}; paper: step {paper.CDAS_STEPS_TO_RANDOM_FINAL} or fewer (about half)."
        )
    if cdas_runs and dyn:
        # per seed: the highest accuracy that Random's final, CDAS and dynamic all reach
        levels = {
            seed: min(goal.get(seed, math.inf), recs[-1].accuracy, dyn[seed][-1].accuracy)
            for seed, recs in cdas_runs.items()
            if seed in dyn
        }
        level = nanmean(list(levels.values()))
        c = [summary.reach(cdas_runs[seed], v) for seed, v in levels.items()]
        d = [summary.reach(dyn[seed], v) for seed, v in levels.items()]
        rc, rd = nanmean([x[1] for x in c]), nanmean([x[1] for x in d])
        hc, hd = nanmean([x[2] for x in c]), nanmean([x[2] for x in d])
        lines.append(
            f"- **CDAS's rollouts against dynamic sampling's for the same accuracy** "
            f"({level * 100:.2f}% on average: per seed, the highest accuracy that Random's final "
            "and both strategies reach): "
            f"{rc / 1e3:,.0f}k against {rd / 1e3:,.0f}k, {_less(rc, rd, 'fewer')}; GPU-hours "
            f"(proxy) {hc:,.0f} against {hd:,.0f}, {_less(hc, hd, 'less')}. Paper: "
            f"{paper.CDAS_TIME_SAVED_VS_DYNAMIC:.0%} less step time (393 against 916 GPU-hours "
            "over 110 steps, at a higher accuracy for CDAS)."
        )
    return lines


def _less(a: float, b: float, word: str) -> str:
    if math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{1 - a / b:.0%} {word}" if a <= b else f"{a / b - 1:.0%} more"


def _rnd_zg(rnd: dict[int, list[StepRecord]] | None) -> str:
    if not rnd:
        return "n/a"
    return f"{fmt_number(_window(rnd, 30))} and {fmt_number(_window(rnd, 110))}"


def predictions(records: Sequence[StepRecord]) -> list[str]:
    """Every paper figure the twin can be held to, with the twin's value and the direction."""
    runs = summary.group_runs(records)
    rnd = runs.get("random")
    out = [
        "| figure | strategy | paper | twin | same direction against Random |",
        "|---|---|---|---|---|",
    ]
    for strategy, points in paper.ACCURACY.items():
        if strategy not in runs:
            continue
        for step, value in points.items():
            twin = _at(runs[strategy], step, "accuracy") * 100
            base_t = _at(rnd, step, "accuracy") * 100 if rnd else math.nan
            base_p = paper.ACCURACY["random"][step]
            same = (
                "(reference)" if strategy == "random" else _direction(base_t, twin, base_p, value)
            )
            out.append(
                _row(
                    f"accuracy at step {step} (%)", strategy, f"{value:.2f}", fmt_number(twin), same
                )
            )
    for strategy, points in paper.ZERO_GRADIENT.items():
        if strategy not in runs:
            continue
        for step, value in points.items():
            twin = _window(runs[strategy], step)
            base_t = _window(rnd, step) if rnd else math.nan
            base_p = paper.ZERO_GRADIENT["random"][step]
            same = (
                "(reference)" if strategy == "random" else _direction(base_t, twin, base_p, value)
            )
            out.append(
                _row(
                    f"zero-gradient share at step {step}",
                    strategy,
                    f"{value:.2f}",
                    fmt_number(twin),
                    same,
                )
            )
    for strategy, value in paper.GPU_HOURS_110.items():
        if strategy not in runs or any(len(recs) < 110 for recs in runs[strategy].values()):
            continue
        twin = nanmean([sum(r.cost for r in recs[:110]) for recs in runs[strategy].values()])
        base_t = (
            nanmean([sum(r.cost for r in recs[:110]) for recs in rnd.values()]) if rnd else math.nan
        )
        same = "(reference)" if strategy == "random" else _direction(base_t, twin, 304.0, value)
        out.append(
            _row("GPU-hours at step 110", strategy, f"{value:.0f}", fmt_number(twin, 0), same)
        )
    return out


def calibration_rows(records: Sequence[StepRecord], experiment: Experiment) -> list[str]:
    """Random's targets against the twin (the fit's only inputs)."""
    rnd = summary.group_runs(records).get("random")
    if not rnd:
        return ["(Random was not in this run.)"]
    out = [
        "| target | step | paper | twin (mean over seeds) | tolerance |",
        "|---|---|---|---|---|",
    ]
    for t in calibrate.RANDOM_TARGETS:
        values = [
            calibrate.observe(recs, Twin(experiment.params, seed).accuracy(), t)
            for seed, recs in rnd.items()
            if len(recs) >= t.step
        ]
        twin = fmt_number(nanmean(values), 3)
        out.append(f"| {t.name} | {t.step} | {t.value:.3f} | {twin} | ±{t.tolerance} |")
    return out


def sensitivity(experiment: Experiment) -> list[str]:
    """CDAS and Random with less prompt-specific learning than calibrated (same seeds)."""
    out = [
        "| specific | Random: zero-gradient at 110 | Random: final accuracy (%) | CDAS: mean "
        "zero-gradient | CDAS: final accuracy (%) | CDAS: steps to Random's final |",
        "|---|---|---|---|---|---|",
    ]
    for value in (*SENSITIVITY, experiment.params.specific):
        exp = Experiment(
            strategies=("random", "cdas"),
            seeds=experiment.seeds,
            steps=experiment.steps,
            params=experiment.params.with_(specific=value),
            band_sample=0,
        )
        records = run(cdas.Coordinator(cdas.MemoryStore()), exp)
        rows = {r.strategy: r for r in summary.summarize(records)}
        runs = summary.group_runs(records)
        mark = " (calibrated)" if value == experiment.params.specific else ""
        out.append(
            _row(
                f"{value:g}{mark}",
                f"{_window(runs['random'], min(110, exp.steps)):.2f}",
                rows["random"].final_accuracy.text(2, 100),
                rows["cdas"].zero_gradient.text(3),
                rows["cdas"].final_accuracy.text(2, 100),
                rows["cdas"].steps_to_target.text(1),
            )
        )
    return out


def write(
    path: Path,
    out: Path,
    records: Sequence[StepRecord],
    experiment: Experiment,
    command: str,
) -> None:
    rows = summary.summarize(records)
    pictures = os.path.relpath(out, path.parent)
    params = "\n".join(
        f"| `{name}` | {value:g} | {doc} |" for name, value, doc in describe_params()
    )
    text = f"""# Results: what each strategy does to a simulated GRPO run

Made by `cdas {command}` (`make results`); every number and picture here
comes from that command, and the same seeds give the same page. The twin is described in
`services/coordinator/cdas/sim/twin.py`, the calibration protocol in `cdas/sim/calibrate.py`.
Setup: {experiment.seeds} seeds per strategy, {experiment.steps} steps,
N = {experiment.params.prompts:,} prompts, B = {experiment.params.batch},
G = {experiment.params.group}, every strategy driven through the library (`--url` runs the same
against a service and gives the same numbers).

## Calibration: Random only

The twin's free parameters were fitted to the paper's Random Sampling run and nothing else
(`cdas calibrate`); every other row below is a prediction made with those parameters unchanged.

{chr(10).join(calibration_rows(records, experiment))}

## The table

Mean ± standard deviation over seeds. "Random's final accuracy" is Random's held-out accuracy at
its last step on the same seed (a seed fixes the twin's world, so the comparison is paired);
"GPU-hours" is the twin's cost proxy, scaled so that Random's 110 steps cost the paper's 304.

{summary.markdown(rows)}
![zero-gradient share per step]({pictures}/zero_gradient.png)

![held-out accuracy against steps and rollouts]({pictures}/accuracy.png)

![GPU-hours]({pictures}/gpu_hours.png)

![competence and the batch's difficulty band]({pictures}/competence.png)

## The three figures, next to the paper's

{chr(10).join(headline(records))}

## Every prediction against the paper

"Same direction" asks whether the strategy sits on the same side of Random in the twin as in the
paper (higher or lower); absolute values are not expected to match.

{chr(10).join(predictions(records))}

## What the CDAS prediction hinges on: prompt-specific learning

Random's zero-gradient share keeps rising after its held-out accuracy has levelled off (0.65 at
step 30, 0.75 at step 110, while accuracy gains 0.9 points from step 55 on). In the twin only
prompt-specific learning (`specific`) can do that, so the fit gives it a sizeable value. CDAS
samples the prompts whose running-mean difficulty D sits next to the competence, and D moves by
1/t of each new observation: a prompt it keeps choosing is learned, solved by all G answers, and
still chosen for a while, because its D lags. How much that costs CDAS depends on `specific`; the
rows below rerun Random and CDAS with less of it (Random then no longer matches the paper's
late rise, which is why the calibrated value is what the table above uses).

{chr(10).join(sensitivity(experiment))}

## The twin's parameters

| parameter | value | meaning |
|---|---|---|
{params}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
