"""One GRPO run: a (strategy, seed) pair trained from the shared warm start against a coordinator.

Each step asks the coordinator for the step's prompts (rounds 1, 2, ... too under DAPO's dynamic
sampling, by the simulator's one refill rule, ``cdas.sim.trainer.play_step``), rolls out G answers
per prompt at the settings' temperature, checks them exactly, posts every group's rewards before
the next round or step is asked for, takes one GRPO update on the trained groups, and measures
the policy on the held-out prompts and on a fixed probe of training prompts.

The run's id is ``{prefix}-{strategy}-s{seed}``; its prompt ids are the training set's row indexes
("0".."N-1"). A run of that name is replaced: the prefix marks the runs as the benchmark's own. The
seed fixes the coordinator's choices and the rollouts' sampling; the warm start, the training set
and the held-out set are the same for every seed and strategy.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cdas.core.errors import RunNotFoundError
from cdas.sim import arms
from cdas.sim.experiment import ROUNDS, ExperimentClient
from cdas.sim.trainer import difficulty_band, play_step, round_size
from cdas_grpo.model import Policy
from cdas_grpo.policy_ops import Rollouts, exact_accuracy, roll_out, update
from cdas_grpo.records import GrpoStep
from cdas_grpo.settings import Settings
from cdas_grpo.task import Problem
from cdas_grpo.warmstart import PromptSets

BAND_SAMPLE = 16
"""Batch prompts whose D is read each step for the competence plot's band."""


def run_id(prefix: str, strategy: str, seed: int) -> str:
    return f"{prefix}-{strategy}-s{seed}"


def strategy_params(strategy: str, settings: Settings) -> dict[str, Any]:
    """The coordinator params an arm (a strategy or a named variant, ``cdas.sim.arms``) runs with
    here: every strategy its defaults, a variant its own, but the curriculum, whose default
    schedule is the paper's (all levels up to step 55 of 110, then levels >= 4 of 5): here the same
    shape, scaled to the run (all rungs for the first half, then the harder 40% of the rungs)."""
    strategy, params = arms.resolve(strategy)
    if strategy != "curriculum":
        return params
    levels = len(settings.rung_list)
    hard = max(1, levels - (2 * levels) // 5 + 1) if levels > 1 else 1
    return {"schedule": [{"until_step": max(1, settings.steps // 2)}, {"min_label": hard}]}


def start_run(
    client: ExperimentClient, settings: Settings, strategy: str, seed: int, prefix: str,
    train: list[Problem],
) -> str:  # fmt: skip
    """Create the run afresh (labels: each prompt's rung, 1 = easiest, for the curriculum)."""
    name = run_id(prefix, strategy, seed)
    with contextlib.suppress(RunNotFoundError):
        client.delete_run(name)
    rungs = settings.rung_list
    kind = arms.resolve(strategy)[0]
    labels = [float(rungs.index(p.rung) + 1) for p in train] if kind == "curriculum" else None
    client.put_run(
        name,
        strategy=kind,
        params=strategy_params(strategy, settings),
        seed=seed,
        prompts=len(train),
        labels=labels,
    )
    return name


@dataclass(frozen=True)
class RungRow:
    """Where a run's training went, by rung: its share of the prompts the run was served (every
    round), and the held-out accuracy of the rung before and after the run."""

    strategy: str
    seed: int
    rung: str
    served: float
    start: float
    end: float


@dataclass
class RunResult:
    records: list[GrpoStep]
    rungs: list[RungRow] = field(default_factory=list)


def by_rung(policy: Policy, problems: list[Problem], settings: Settings) -> dict[str, float]:
    """Exact held-out accuracy of each rung."""
    return {
        r.name: exact_accuracy(policy, [p for p in problems if p.rung == r])
        for r in settings.rung_list
    }


def train_run(
    client: ExperimentClient,
    name: str,
    settings: Settings,
    warm: Mapping[str, torch.Tensor],
    sets: PromptSets,
    seed: int,
    device: torch.device,
    on_step: Callable[[GrpoStep], None] | None = None,
    label: str | None = None,
) -> RunResult:
    """Steps 1..``settings.steps`` of the run ``name``: one record per step (named ``label``, the
    experiment's arm; default the run's strategy), and where the training went by rung."""
    train, heldout, probe = sets.train, sets.heldout, sets.probe
    info = client.get_run(name)
    rounds = info.strategy in ROUNDS
    max_rounds = int(info.params.get("max_rounds", 10))
    torch.manual_seed(seed)
    policy = Policy(settings.model).to(device)
    policy.load_state_dict(warm)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.lr, weight_decay=0.0)
    ramp = settings.lr_warmup * settings.minibatches  # optimizer steps of linear warm-up
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda n: min(1.0, (n + 1) / ramp))
    generator = torch.Generator(device=device).manual_seed(1_000_003 * seed + 17)
    shuffler = torch.Generator().manual_seed(1_000_003 * seed + 29)
    g = settings.group
    records: list[GrpoStep] = []
    start = by_rung(policy, heldout, settings)
    served: Counter[str] = Counter()
    following: Any = None  # the step's round 0, answered by the previous step's advance
    for step in range(1, settings.steps + 1):
        started = time.perf_counter()
        band = (math.nan,) * 3
        measuring = 0.0

        def play(batch: Any) -> tuple[np.ndarray, list[dict[str, Any]], Rollouts]:
            nonlocal band, measuring
            if batch.round == 0:  # D read before any of the step's results; not timed
                t = time.perf_counter()
                band = difficulty_band(
                    client, name, batch.prompt_ids, BAND_SAMPLE, 1_000_003 * seed + batch.step
                )
                measuring += time.perf_counter() - t
            problems = [train[int(p)] for p in batch.prompt_ids]
            served.update(p.rung.name for p in problems)
            rolled = roll_out(policy, problems, g, settings.temperature, generator)
            results = [
                {"prompt_id": p, "rewards": row}
                for p, row in zip(batch.prompt_ids, rolled.rewards.tolist(), strict=True)
            ]
            return np.asarray(rolled.correct, dtype=np.int64), results, rolled

        next_size = round_size(settings.batch, info.size, rounds, settings.oversample)
        step_played = play_step(
            client, name, step, play, batch=settings.batch, group=g, run_size=info.size,
            rounds=rounds, max_rounds=max_rounds, oversample=settings.oversample,
            first=following, next_size=next_size if step < settings.steps else None,
        )  # fmt: skip
        played, following = step_played.rounds, step_played.following
        trained = [(r.payload, torch.as_tensor(r.kept)) for r in played]
        entropy = update(policy, optimizer, trained, settings.minibatches, shuffler, schedule)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started - measuring
        all_k = np.concatenate([r.correct for r in played])
        trained_k = np.concatenate([r.correct[r.kept] for r in played])
        record = GrpoStep(
            strategy=label or info.strategy,
            seed=seed,
            step=step,
            competence=played[0].batch.competence,
            rounds=len(played),
            rollouts=int(all_k.size) * g,
            trained=int(trained_k.size),
            zero_gradient=float(np.mean((all_k == 0) | (all_k == g))),
            pass_rate=float(np.mean(all_k)) / g,
            signal=float(np.sum(4.0 * trained_k * (g - trained_k) / (g * g))) / settings.batch,
            accuracy=exact_accuracy(policy, heldout),
            cost=seconds / 3600.0,
            band_low=band[0],
            band_mid=band[1],
            band_high=band[2],
            seconds=seconds,
            entropy=entropy,
            train_accuracy=exact_accuracy(policy, probe),
        )
        records.append(record)
        if on_step is not None:
            on_step(record)
    end = by_rung(policy, heldout, settings)
    total = max(1, sum(served.values()))
    rungs = [
        RungRow(label or info.strategy, seed, name, served[name] / total, start[name], end[name])
        for name in start
    ]
    return RunResult(records, rungs)
