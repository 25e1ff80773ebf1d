"""A simulated GRPO trainer: asks a coordinator for each step's prompts, rolls them out on the twin,
posts the pass rates back, and trains the twin on the groups a real trainer would keep.

The coordinator is anything with the library's methods: ``cdas.Coordinator`` in process, or the
SDK's ``RestClient`` / ``GrpcClient`` against a running service; the same seed gives the same
numbers through each (the tests hold them to it).

One step (plain GRPO): ask for B prompts, roll out G answers each, post the B results, train on
all B groups (zero-variance ones teach nothing but still count in the batch mean). A step's last
results and the next step's prompts are one call (``advance``), the same batches as two.
One step under DAPO's dynamic sampling (``rounds=True``): ask for round 0, 1, ... of the step,
``oversample`` x B prompts each (never more than the prompts not yet issued in the step), post
every round's results, and stop once B groups with non-zero variance are in hand or the run's
``max_rounds`` is reached; train on the first B informative groups. Every rollout generated is
paid for, which is the cost dynamic sampling is compared on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import numpy as np

from cdas.core.api import Batches, Lookups
from cdas.core.views import Batch
from cdas.sim.twin import IntArray, Twin

OVERSAMPLE = 3
"""DAPO's generation batch, in multiples of the train batch."""


class SamplingClient(Batches, Lookups, Protocol):
    """What the trainer needs of a coordinator (``cdas.core.api``): a step's two calls, the run's
    settings and a prompt's difficulty; the library and the SDK clients have them."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What one simulated step did and cost, as the experiment's CSV and plots read it."""

    strategy: str
    seed: int
    step: int
    competence: float
    """the coordinator's competence the step's batch was chosen with (C_{n-1})"""
    rounds: int
    rollouts: int
    """rollouts generated in the step (every round)"""
    trained: int
    """groups trained on"""
    zero_gradient: float
    """share of the step's generated groups whose G rewards were all equal"""
    pass_rate: float
    """mean pass rate of the step's generated groups"""
    signal: float
    """the learning signal: sum of trained groups' normalized variance / B"""
    accuracy: float
    """held-out accuracy after the step"""
    cost: float
    """the GPU-time proxy of the step, in GPU-hours"""
    band_low: float
    band_mid: float
    band_high: float
    """10th, 50th and 90th percentile of D over a sample of the batch, read before the results"""

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def row(self) -> dict[str, Any]:
        return asdict(self)


def _indexes(prompt_ids: Sequence[str]) -> IntArray:
    return np.asarray(prompt_ids, dtype=np.str_).astype(np.int64)


def _results(prompt_ids: Sequence[str], k: IntArray, group: int) -> list[dict[str, Any]]:
    return [
        {"prompt_id": p, "correct": c, "total": group}
        for p, c in zip(prompt_ids, k.tolist(), strict=True)
    ]


def difficulty_band(
    client: SamplingClient, run_id: str, prompt_ids: Sequence[str], sample: int, seed: int
) -> tuple[float, float, float]:
    """Quantiles of D over ``sample`` prompts of the batch (one ``get_prompt`` each)."""
    if sample <= 0 or not prompt_ids:
        return (float("nan"),) * 3
    picker = np.random.default_rng(seed)
    chosen = picker.choice(len(prompt_ids), size=min(sample, len(prompt_ids)), replace=False)
    d = np.array([client.get_prompt(run_id, prompt_ids[i]).difficulty for i in chosen])
    low, mid, high = np.quantile(d, [0.1, 0.5, 0.9])
    return float(low), float(mid), float(high)


@dataclass
class Round:
    """One round of a step: the coordinator's batch, the correct rollouts out of G per prompt,
    whatever the caller's rollout returned for training (``payload``), and the positions of the
    batch's groups that are trained on."""

    batch: Batch
    correct: IntArray
    payload: Any
    kept: IntArray


@dataclass(frozen=True, slots=True)
class Played:
    """A step's rounds, and the next step's round 0 when the step asked for it (``advance``)."""

    rounds: list[Round]
    following: Batch | None


def round_size(
    batch: int, run_size: int, rounds: bool, oversample: int = OVERSAMPLE, issued: int = 0
) -> int:
    """The size of a step's next round once ``issued`` prompts of the step went out: ``batch``,
    or under dynamic sampling ``oversample`` x ``batch``, never more than the prompts not yet
    issued in the step (below 1: no further round)."""
    return min(oversample * batch, run_size - issued) if rounds else batch


def play_step(
    client: SamplingClient,
    run_id: str,
    step: int,
    play: Callable[[Batch], tuple[IntArray, list[dict[str, Any]], Any]],
    *,
    batch: int,
    group: int,
    run_size: int,
    rounds: bool = False,
    max_rounds: int = 10,
    oversample: int = OVERSAMPLE,
    first: Batch | None = None,
    next_size: int | None = None,
) -> Played:
    """One step's rounds, as a trainer plays them; the one place for the refill rule.

    ``play(batch)`` rolls the batch out and returns (correct rollouts per prompt, the results to
    post, a payload). Each round's results are posted before the next round is asked for. Plain
    GRPO: one round of ``batch`` prompts, every group kept. DAPO's dynamic sampling (``rounds``):
    rounds of ``oversample`` x ``batch`` prompts (never more than the prompts not yet issued in
    the step) until ``batch`` groups with non-zero variance are kept or ``max_rounds`` is reached;
    the first ``batch`` informative groups are kept, in order.

    ``first``: the step's round 0, already issued (the previous step's ``advance``). With
    ``next_size``, the step's last results go with the one-call step, ``advance``, which also
    answers the next step's round 0 of that size (``Played.following``): one call fewer a step,
    the same batches.
    """
    out: list[Round] = []
    issued = 0
    informative = 0
    following = None
    for round_ in range(max_rounds if rounds else 1):
        if round_ == 0 and first is not None:
            issued_batch = first
        else:
            size = round_size(batch, run_size, rounds, oversample, issued)
            issued_batch = client.next_batch(run_id, step, size, round=round_)
        k, results, payload = play(issued_batch)
        issued += len(issued_batch.prompt_ids)
        if rounds:
            useful = (k > 0) & (k < group)
            kept = np.flatnonzero(useful)[: batch - informative]
            informative += kept.size
        else:
            kept = np.arange(k.size)
        last = (
            not rounds
            or informative >= batch
            or round_ + 1 >= max_rounds
            or round_size(batch, run_size, rounds, oversample, issued) < 1
        )
        if last and next_size is not None:
            following = client.advance(run_id, step, results, next_size).batch
        else:
            client.report_results(run_id, step, results)
        out.append(Round(issued_batch, k, payload, kept))
        if last:
            break
    return Played(out, following)


def train(
    client: SamplingClient,
    run_id: str,
    twin: Twin,
    steps: int,
    *,
    rounds: bool = False,
    band_sample: int = 32,
    on_step: Callable[[StepRecord], None] | None = None,
    label: str | None = None,
) -> list[StepRecord]:
    """Drive ``run_id`` for steps 1..``steps``; returns one record per step, named ``label`` (an
    experiment's arm, ``cdas.sim.arms``; default the run's strategy). O(steps x B)."""
    info = client.get_run(run_id)
    p = twin.params
    max_rounds = int(info.params.get("max_rounds", 10)) if rounds else 1
    records: list[StepRecord] = []
    following: Batch | None = None
    for step in range(1, steps + 1):
        band = (float("nan"),) * 3

        def play(batch: Batch) -> tuple[IntArray, list[dict[str, Any]], IntArray]:
            nonlocal band
            if batch.round == 0:  # D read before any of the step's results
                band = difficulty_band(
                    client, run_id, batch.prompt_ids, band_sample, twin.seed * 1000003 + batch.step
                )
            idx = _indexes(batch.prompt_ids)
            k = twin.rollout(idx)
            return k, _results(batch.prompt_ids, k, p.group), idx

        step_played = play_step(
            client,
            run_id,
            step,
            play,
            batch=p.batch,
            group=p.group,
            run_size=info.size,
            rounds=rounds,
            max_rounds=max_rounds,
            first=following,
            next_size=round_size(p.batch, info.size, rounds) if step < steps else None,
        )
        played, following = step_played.rounds, step_played.following
        first = played[0].batch
        all_k = np.concatenate([r.correct for r in played])
        trained_idx = np.concatenate([r.payload[r.kept] for r in played])
        trained_k = np.concatenate([r.correct[r.kept] for r in played])
        signal = twin.learn(trained_idx, trained_k)
        units = twin.cost_units(all_k) + p.train_cost * twin.cost_units(trained_k)
        record = StepRecord(
            strategy=label or info.strategy,
            seed=twin.seed,
            step=step,
            competence=first.competence,
            rounds=len(played),
            rollouts=all_k.size * p.group,
            trained=trained_idx.size,
            zero_gradient=float(np.mean((all_k == 0) | (all_k == p.group))),
            pass_rate=float(np.mean(all_k)) / p.group,
            signal=signal,
            accuracy=twin.accuracy(),
            cost=units * p.gpu_hours_per_unit,
            band_low=band[0],
            band_mid=band[1],
            band_high=band[2],
        )
        records.append(record)
        if on_step is not None:
            on_step(record)
    return records
