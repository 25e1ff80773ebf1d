"""Issue 16's aim, and the one criterion both results pages judge the CDAS variants by.

The aim: a variant that keeps CDAS's cut in zero-gradient groups and also reaches Random's final
held-out accuracy in clearly fewer steps than Random, without dynamic sampling's extra rollouts.
The criterion, written before any variant ran: on every seed the variant reaches Random's final
held-out accuracy (on the same seed), in fewer steps than Random on average, with a mean
zero-gradient share below Random's and no more rollouts per step than Random's.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdas.sim import arms, summary


def meets(row: summary.Row, random: summary.Row) -> bool:
    """Whether the arm ``row`` meets the aim against ``random`` (same run, same seeds)."""
    reach = row.steps_to_target
    everywhere = reach.count == reach.seeds
    faster = everywhere and reach.mean < random.steps_to_target.mean
    lean = row.rollouts.mean <= random.rollouts.mean * (1 + 1e-9)
    return faster and row.zero_gradient.mean < random.zero_gradient.mean and lean


def verdicts(rows: Sequence[summary.Row], steps: int) -> list[str]:
    """One line per variant present in ``rows`` (against CDAS and Random), then the conclusion;
    empty when the variants, CDAS or Random are missing. ``steps`` is each run's length."""
    by = {r.strategy: r for r in rows}
    present = [name for name in arms.VARIANTS if name in by]
    if not present or "random" not in by or "cdas" not in by:
        return []
    rnd, plain = by["random"], by["cdas"]
    per_step = rnd.rollouts.mean / steps
    out, met = [], []
    for name in present:
        row = by[name]
        zg, acc, reach = row.zero_gradient, row.final_accuracy, row.steps_to_target
        verdict = meets(row, rnd)
        if verdict:
            met.append(name)
        out.append(
            f"- **{name}**: mean zero-gradient share {zg.mean:.3f} (CDAS "
            f"{plain.zero_gradient.mean:.3f}, Random {rnd.zero_gradient.mean:.3f}); final "
            f"held-out accuracy {acc.mean:.1%} (CDAS {plain.final_accuracy.mean:.1%}, Random "
            f"{rnd.final_accuracy.mean:.1%}); reached Random's final accuracy on {reach.count} of "
            f"{reach.seeds} seeds"
            + (f", at step {reach.mean:.1f} on average" if reach.count else "")
            + f" (Random itself: step {rnd.steps_to_target.mean:.1f}); "
            f"{row.rollouts.mean / steps:,.0f} rollouts a step (Random "
            f"{per_step:,.0f}). " + ("Meets the aim." if verdict else "Does not meet the aim.")
        )
    out += [
        "",
        (
            f"Issue 16's aim (CDAS's cut in zero-gradient groups and Random's final accuracy in "
            f"fewer steps than Random, without extra rollouts) is met here by {', '.join(met)}."
            if met
            else "No variant meets issue 16's aim here (CDAS's cut in zero-gradient groups and "
            "Random's final accuracy in fewer steps than Random, without extra rollouts); the "
            "numbers above say by how much each misses."
        ),
    ]
    return out
