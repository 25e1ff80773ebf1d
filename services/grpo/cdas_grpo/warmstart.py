"""The prompt sets and the supervised warm start every strategy trains from.

The sets are drawn once from ``task_seed``: the training set (N prompts, the coordinator's ids
"0".."N-1" in this order), the held-out set (never trained on), and a probe of training prompts,
each the same mix of rungs and none sharing a problem. The warm start is the policy after
``warm_steps`` supervised steps on fresh problems (never one of the two sets) of the rungs of
``warm_rungs``, teacher-forced on the answer tokens: the stand-in for a pretrained model, whose
skill stops somewhere along the rungs. By default it is taught two-operand sums, three-operand
ones rarely and four-operand ones never, so the training set holds what the model can do, what it
half can, and what it can only learn from reward or not at all. It is trained once, saved with
a digest of the settings it depends on (``Settings.warm_start_key``) and reused by every strategy
and seed, and by later runs.

Its report is what the paper's setup has to be held against: the training prompts' pass rates at
the start of RL, G samples at the settings' temperature, split into always solved (G of G), never
solved (0 of G) and in between; and the exact held-out accuracy at the start.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cdas_grpo import batching
from cdas_grpo.model import Policy, token_log_probs
from cdas_grpo.policy_ops import exact_accuracy, roll_out
from cdas_grpo.settings import Settings
from cdas_grpo.task import Problem, distinct, parse_mix, stream

WARMUP = 50
"""Steps of linear learning-rate warm-up of the supervised warm start."""


@dataclass(frozen=True)
class PromptSets:
    train: list[Problem]
    heldout: list[Problem]
    probe: list[Problem]


def prompt_sets(settings: Settings) -> PromptSets:
    """The training set, the held-out set and the probe (a fixed sample of training prompts)."""
    rng = random.Random(settings.task_seed)
    rungs = settings.rung_list
    train = distinct(rng, rungs, settings.train_prompts, set())
    heldout = distinct(rng, rungs, settings.heldout_prompts, {p.text for p in train})
    probe = [
        train[i] for i in sorted(rng.sample(range(len(train)), min(settings.probe, len(train))))
    ]
    return PromptSets(train, heldout, probe)


@dataclass(frozen=True)
class WarmReport:
    """The warm start's pass-rate spread over the training set, and its cost."""

    key: str
    always: float
    """share of training prompts solved by all G samples"""
    never: float
    """share solved by none"""
    between: float
    heldout_accuracy: float
    """exact expected accuracy of one sample on the held-out prompts"""
    train_accuracy: float
    seconds: float
    """wall-clock seconds of the supervised training"""
    by_rung: dict[str, list[float]]
    """rung -> [always, never, between] shares"""


def _supervised(
    policy: Policy,
    settings: Settings,
    exclude: set[str],
    device: torch.device,
    on_step: Callable[[int], None] | None,
) -> None:
    rng = random.Random(settings.task_seed + 1)
    rungs, weights = parse_mix(settings.warm_rungs)
    source = stream(rng, rungs, weights, exclude)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.warm_lr, weight_decay=0.0)
    total = settings.warm_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / WARMUP) * max(0.0, 1.0 - s / total)
    )
    policy.train()
    for step in range(total):
        problems = [
            noisy(next(source), settings.warm_noise, rng) for _ in range(settings.warm_batch)
        ]
        tokens, mask, head = batching.answered(problems, device)
        logp, _ = token_log_probs(policy, tokens, head)
        loss = -(logp * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if on_step is not None:
            on_step(step + 1)


def noisy(problem: Problem, share: float, rng: random.Random) -> Problem:
    """The problem as the warm start's imperfect data has it: each answer digit that receives a
    carry is replaced by another digit with probability ``share``. Digits without a carry stay
    right, so the warm start is sure of sums without carries and unsure exactly where arithmetic
    is hard (more carries: more doubt), as a pretrained model is; that doubt is what RL sharpens.
    """
    if share <= 0:
        return problem
    operands = list(problem.text[:-1].split("+"))
    digits = list(problem.answer)
    carry = 0
    for place in range(len(digits)):
        column = sum(int(x[place]) for x in operands if place < len(x))
        if carry and rng.random() < share:
            digits[place] = rng.choice([d for d in "0123456789" if d != digits[place]])
        carry = (column + carry) // 10
    return Problem(problem.text, "".join(digits), problem.rung)


def measure(
    policy: Policy, settings: Settings, sets: PromptSets, key: str, seconds: float,
    device: torch.device,
) -> WarmReport:  # fmt: skip
    """The pass-rate spread of ``policy`` over the training set (G samples each, seeded)."""
    generator = torch.Generator(device=device).manual_seed(settings.task_seed + 2)
    g = settings.group
    counts: list[int] = []
    chunk = 256
    for start in range(0, len(sets.train), chunk):
        part = sets.train[start : start + chunk]
        counts += roll_out(policy, part, g, settings.temperature, generator).correct
    by_rung: dict[str, list[float]] = {}
    for rung in settings.rung_list:
        ks = [k for k, p in zip(counts, sets.train, strict=True) if p.rung == rung]
        by_rung[rung.name] = _shares(ks, g)
    always, never, between = _shares(counts, g)
    return WarmReport(
        key=key,
        always=always,
        never=never,
        between=between,
        heldout_accuracy=exact_accuracy(policy, sets.heldout),
        train_accuracy=exact_accuracy(policy, sets.train),
        seconds=seconds,
        by_rung=by_rung,
    )


def _shares(counts: list[int], group: int) -> list[float]:
    n = max(1, len(counts))
    always = sum(k == group for k in counts) / n
    never = sum(k == 0 for k in counts) / n
    return [always, never, 1.0 - always - never]


def warm_start(
    settings: Settings,
    sets: PromptSets,
    directory: Path,
    device: torch.device,
    on_step: Callable[[int], None] | None = None,
) -> tuple[dict[str, torch.Tensor], WarmReport]:
    """The warm start's weights and report: read from ``directory`` when a file made under the
    same settings is there, else trained (``on_step`` after each step) and saved there."""
    key = settings.warm_start_key()
    weights = directory / f"warmstart-{key}.pt"
    report_file = directory / f"warmstart-{key}.json"
    if weights.is_file() and report_file.is_file():
        state = torch.load(weights, map_location=device, weights_only=True)
        return state, WarmReport(**json.loads(report_file.read_text()))
    torch.manual_seed(settings.task_seed)
    policy = Policy(settings.model).to(device)
    started = time.perf_counter()
    exclude = {p.text for p in sets.train} | {p.text for p in sets.heldout}
    _supervised(policy, settings, exclude, device, on_step)
    report = measure(policy, settings, sets, key, time.perf_counter() - started, device)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    torch.save(state, weights.with_suffix(".tmp"))
    weights.with_suffix(".tmp").replace(weights)
    report_file.write_text(json.dumps(asdict(report), indent=1))
    return state, report
