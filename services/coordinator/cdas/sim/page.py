"""The results page (``docs/results.md``): written whole by ``cdas simulate --page`` (``make
results``), never by hand, so that every number on it comes from the committed command.

Sections: how it was made; the calibration (its targets, Random's and Prioritized's figures, and
how well they pin each parameter); the held-out figures with their declared tolerances; the table
and the plots; the CDAS variants judged against issue 16's aim; the three headline figures next to
the paper's; each prediction against the paper's figure, with whether the direction agrees; the
validation on a real GRPO run; a sensitivity check of prompt-specific learning; and the twin's
parameters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import cdas
from cdas.sim import aim, calibrate, paper, realrun, summary
from cdas.sim.experiment import Experiment, run
from cdas.sim.trainer import StepRecord
from cdas.sim.twin import Twin, TwinParams, describe_params

SENSITIVITY = (0.0, 0.1, 0.2)
"""``specific`` values tried against the calibrated one (CDAS and Random, same seeds)."""
SATURATED = 0.005
"""Final accuracies this close across every arm (half a point) get the page's warning that the
step counts to Random's final accuracy then measure the approach to the twin's ceiling."""


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


def _figure(t: calibrate.Target, value: float) -> str:
    """A target's value in its unit: accuracy in %, a zero-gradient share, GPU-hours."""
    if t.name == "accuracy":
        return fmt_number(value, 2, 100)
    if t.name == "gpu_hours":
        return fmt_number(value, 0)
    return fmt_number(value, 2)


def target_rows(
    records: Sequence[StepRecord],
    experiment: Experiment,
    targets: Sequence[calibrate.Target],
    label: str,
) -> list[str]:
    """Each of ``targets`` against the twin (mean over the page's seeds), its tolerance, and
    whether the twin is inside it; ``label`` names the twin's column."""
    runs = summary.group_runs(records)
    out = [
        f"| strategy | figure | step | paper | {label} | tolerance | inside |",
        "|---|---|---|---|---|---|---|",
    ]
    # the held-out accuracy before any step: a seed's world, the same for every strategy
    seeds = {seed for have in runs.values() for seed in have}
    start = {seed: Twin(experiment.params, seed).accuracy() for seed in seeds}
    inside = total = 0
    for t in targets:
        have = runs.get(t.strategy, {})
        value = nanmean(
            [
                calibrate.observe(recs, start[seed], t)
                for seed, recs in have.items()
                if len(recs) >= t.step
            ]
        )
        ok = not math.isnan(value) and abs(value - t.value) <= t.tolerance
        inside, total = inside + ok, total + (not math.isnan(value))
        out.append(
            _row(
                t.strategy,
                t.name.replace("_", "-"),
                t.step,
                _figure(t, t.value),
                _figure(t, value),
                "±" + _figure(t, t.tolerance),
                "yes" if ok else ("n/a" if math.isnan(value) else "**no**"),
            )
        )
    out += ["", f"{inside} of {total} inside their tolerance."]
    return out


def identifiability_rows(experiment: Experiment) -> list[str]:
    """How well the calibration targets pin each fitted parameter (``calibrate.identifiability``
    at the page's parameters, seeds 0 and 1)."""
    out = [
        "| parameter | fitted | prior | sd, Random's targets | sd, Random's and Prioritized's |",
        "|---|---|---|---|---|",
    ]
    for pin in calibrate.identifiability(experiment.params, (0, 1)):
        out.append(
            _row(
                f"`{pin.name}`",
                f"{pin.value:.4g}",
                f"{calibrate.PRIORS[pin.name]:g}",
                f"{pin.sd_random:.2f}",
                f"{pin.sd_both:.2f}",
            )
        )
    return out


def realrun_rows(measured: realrun.Measured) -> list[str]:
    """The twin fitted to the real GRPO run in ``directory`` and its predictions of the other
    arms (``cdas.sim.realrun``): the fitted parameters, Random's targets, the predictions."""
    fitted, value = realrun.fit(measured)
    checks = realrun.validate(measured, fitted)
    out = [
        f"Fitted to `{measured.directory}` (N = {fitted.prompts}, B = {fitted.batch}, G = "
        f"{fitted.group}, {measured.last_step} steps; seeds {', '.join(map(str, realrun.SEEDS))} "
        f"of the twin; loss {value:.1f}):",
        "",
        "| parameter | fitted to the real Random run | fitted to the paper (this page) |",
        "|---|---|---|",
    ]
    for name in calibrate.FREE:
        out.append(
            _row(f"`{name}`", f"{getattr(fitted, name):.4g}", f"{getattr(TwinParams(), name):.4g}")
        )
    scale = {"accuracy": 100.0, "train_accuracy": 100.0}
    names = {
        "always": "training prompts solved by all G (warm start)",
        "never": "training prompts solved by none (warm start)",
        "zero_gradient": "zero-gradient share",
        "mean_zero_gradient": "mean zero-gradient share",
        "accuracy": "held-out accuracy (%)",
        "train_accuracy": "training-probe accuracy (%)",
    }

    def cell(check: realrun.Check, v: float) -> str:
        return fmt_number(v, 2, scale.get(check.name, 1.0))

    out += [
        "",
        "Random's figures, the fit's only inputs:",
        "",
        "| figure | step | measured | twin |",
        "|---|---|---|---|",
    ]
    for c in checks:
        if c.tolerance is None:
            out.append(_row(names[c.name], c.step, cell(c, c.measured), cell(c, c.twin)))
    predicted = [c for c in checks if c.tolerance is not None]
    out += [
        "",
        "Every other arm, predicted by the fitted twin unchanged:",
        "",
        "| arm | figure | step | measured | twin | tolerance | inside |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in predicted:
        assert c.tolerance is not None
        out.append(
            _row(
                c.arm,
                names[c.name],
                c.step,
                cell(c, c.measured),
                cell(c, c.twin),
                "±" + cell(c, c.tolerance),
                "yes" if c.inside else "**no**",
            )
        )
    out += ["", f"{sum(c.inside for c in predicted)} of {len(predicted)} inside their tolerance."]
    judged = aim.verdicts(summary.summarize(measured.records()), measured.last_step)
    if judged:
        out += ["", "The CDAS variants on this real run, by the same criterion as above:", ""]
        out += judged
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
    real_run: realrun.Measured | None = None,
) -> None:
    """Write the page to ``path`` (its plots are in ``out``); ``real_run``, a ``cdas grpo``
    output directory read, adds the validation on real RL."""
    rows = summary.summarize(records)
    pictures = os.path.relpath(out, path.parent)
    params = "\n".join(
        f"| `{name}` | {value:g} | {doc} |" for name, value, doc in describe_params()
    )
    real = (
        "\n".join(realrun_rows(real_run))
        if real_run is not None
        else "(Not made: give `cdas simulate` a `cdas grpo` output with `--real-run`.)"
    )
    judged = aim.verdicts(rows, experiment.steps) or ["(The variants were not in this run.)"]
    finals = [r.final_accuracy.mean for r in rows if not math.isnan(r.final_accuracy.mean)]
    if finals and max(finals) - min(finals) < SATURATED:
        judged += [
            "",
            f"Read with care: here every arm's final held-out accuracy lies within "
            f"{(max(finals) - min(finals)) * 100:.2f} points of every other's. The twin's ability "
            'saturates at its ceiling, so "steps to Random\'s final accuracy" measures which arm '
            "comes closest to the ceiling first. The validation on real RL below judges the same "
            "variants on a real run.",
        ]
    text = f"""# Results: what each strategy does to a simulated GRPO run

Made by `cdas {command}` (`make results`); every number and picture here
comes from that command, and the same seeds give the same page. The twin is described in
`services/coordinator/cdas/sim/twin.py`, the calibration protocol in `cdas/sim/calibrate.py`, the
validation on real RL in `cdas/sim/realrun.py`.
Setup: {experiment.seeds} seeds per strategy, {experiment.steps} steps,
N = {experiment.params.prompts:,} prompts, B = {experiment.params.batch},
G = {experiment.params.group}, every strategy driven through the library (`--url` runs the same
against a service and gives the same numbers).

## Calibration: Random and Prioritized

The protocol (`cdas/sim/calibrate.py`, fixed before any prediction was looked at): the twin's
free parameters are fitted (`cdas calibrate`) to the paper's Random Sampling figures and
Prioritized Sampling's, and to nothing of CDAS, Dynamic Sampling or Curriculum; the loss is the
squared misses in hundredths plus a weak pull toward stated priors; the tolerances below were
declared with it. The twin's values are the means over this page's seeds.

{chr(10).join(target_rows(records, experiment, calibrate.CALIBRATION_TARGETS, "twin"))}

How well those targets pin each fitted parameter: the standard deviation of its encoded value
(logit of a share, log of a rate, tenths of `sharpen`, logits otherwise) from the loss's
curvature at the fit; 1.0 is the prior's alone, the targets then say nothing about it.

{chr(10).join(identifiability_rows(experiment))}

## Held out: the paper's figures the twin predicts

Every other strategy runs with the calibrated parameters unchanged. The tolerances were declared
in the protocol before these runs were made.

{chr(10).join(target_rows(records, experiment, calibrate.HELDOUT_TARGETS, "twin's prediction"))}

## The table

Mean ± standard deviation over seeds. "Random's final accuracy" is Random's held-out accuracy at
its last step on the same seed (a seed fixes the twin's world, so the comparison is paired);
"GPU-hours" is the twin's cost proxy, scaled so that Random's 110 steps cost the paper's 304.

{summary.markdown(rows)}
![zero-gradient share per step]({pictures}/zero_gradient.png)

![held-out accuracy against steps and rollouts]({pictures}/accuracy.png)

![GPU-hours]({pictures}/gpu_hours.png)

![competence and the batch's difficulty band]({pictures}/competence.png)

## The CDAS variants

Each variant's parameters were fixed in `cdas/sim/arms.py` before it first ran; each is judged by
the criterion written before any variant ran (`cdas/sim/aim.py`).

{chr(10).join(judged)}

## The three figures, next to the paper's

{chr(10).join(headline(records))}

## Every prediction against the paper

"Same direction" asks whether the strategy sits on the same side of Random in the twin as in the
paper (higher or lower).

{chr(10).join(predictions(records))}

## Validation on real RL

The twin fitted, by the protocol in `cdas/sim/realrun.py`, to the Random run of the real GRPO
benchmark (`make grpo-results`, docs/grpo.md) and nothing else, then asked to predict the
benchmark's other arms. The training-probe accuracy is what tells memorisation (trained prompts
rise above held-out ones) from sharpening (both move alike). The twin has no forgetting: its
ability never falls.

{real}

## Prompt-specific learning

CDAS samples the prompts whose running-mean difficulty D sits next to the competence, and D moves
by 1/t of each new observation: a prompt it keeps choosing is learned, solved by all G answers,
and still chosen for a while, because its D lags. How much that costs CDAS depends on how fast a
prompt is learned (`specific`); the rows below rerun Random and CDAS with less of it than
calibrated, everything else unchanged.

{chr(10).join(sensitivity(experiment))}

## The twin's parameters

| parameter | value | meaning |
|---|---|---|
{params}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
