"""What GRPO does with the policy: roll a batch out, score held-out prompts exactly, and take one
policy-gradient step on the trained groups.

GRPO here (DeepSeekMath's): rewards r_ij in {0, 1} for rollout j of prompt i, advantages A_ij =
(r_ij - mean_j r_ij) / (std_j r_ij + 1e-4) (the group's sample standard deviation, as TRL
computes it), and PPO's clipped objective over the trained rollouts, each rollout's tokens (up to
and including its end token) averaged, in a few minibatch steps per batch (``update``); no KL
penalty. A group whose rewards are all equal has A = 0 and adds nothing but its share of the
mean: the waste prompt selection is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cdas_grpo import batching
from cdas_grpo.model import Policy, answer_mask, token_log_probs
from cdas_grpo.task import PAD, Problem


@dataclass
class Rollouts:
    """A batch rolled out: prompts repeated G times, the sampled tokens and their 0/1 rewards."""

    prompts: Tensor
    """(n G, P) left-padded prompt tokens, each prompt G times in a row"""
    completions: Tensor
    """(n G, M) sampled tokens"""
    rewards: Tensor
    """(n, G) 0/1 rewards"""

    @property
    def correct(self) -> list[int]:
        return [int(v) for v in self.rewards.sum(dim=1).tolist()]


def roll_out(
    policy: Policy,
    problems: Sequence[Problem],
    group: int,
    temperature: float,
    generator: torch.Generator,
) -> Rollouts:
    """G samples of each problem at ``temperature``, checked exactly."""
    device = next(policy.parameters()).device
    prompts = batching.prompts(problems, device).repeat_interleave(group, dim=0)
    policy.eval()
    completions = policy.generate(
        prompts, batching.max_new_tokens(problems), generator, temperature
    )
    return Rollouts(prompts, completions, batching.correct(problems, completions.cpu(), group))


def advantages(rewards: Tensor) -> Tensor:
    """(n, G) group-normalised advantages (see the module docstring)."""
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(mean)
    return (rewards - mean) / (std + 1e-4)


def update(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    parts: Sequence[tuple[Rollouts, Tensor]],
    minibatches: int,
    generator: torch.Generator,
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
    clip: float = 0.2,
) -> float:
    """GRPO's policy update on the groups ``kept`` (positions) of each rolled-out batch: the
    trained rollouts, shuffled by group, are split into ``minibatches`` optimizer steps (the
    paper's setup takes B x G / train batch = 4 per step), each on PPO's clipped objective

        - mean_rollouts (1/|o|) sum_t min(rho_t A, clip(rho_t, 1 - eps, 1 + eps) A),
          rho_t = pi(o_t | ...) / pi_old(o_t | ...),

    with pi_old the policy that generated them (rho = 1 on the first minibatch). Returns the mean
    per-token entropy of the trained rollouts under pi_old, in nats: the policy's confidence."""
    device = next(policy.parameters()).device
    prompts, completions, adv = [], [], []
    for rolled, kept in parts:
        if kept.numel() == 0:
            continue
        g = rolled.rewards.shape[1]
        rows = (kept[:, None] * g + torch.arange(g)[None, :]).reshape(-1).to(device)
        prompts.append(rolled.prompts[rows])
        completions.append(rolled.completions[rows])
        adv.append(advantages(rolled.rewards[kept]).reshape(-1).to(device))
    if not prompts:
        return float("nan")
    width = max(p.shape[1] for p in prompts)
    tokens = torch.cat(
        [
            torch.cat([_left_pad(p, width), c], dim=1)
            for p, c in zip(prompts, completions, strict=True)
        ]
    )
    mask = answer_mask(torch.cat(completions))
    lengths = mask.sum(dim=1).clamp(min=1)
    advantage = torch.cat(adv)
    policy.eval()
    with torch.no_grad():
        old, entropy = token_log_probs(policy, tokens, width)
    policy.train()
    groups = tokens.shape[0] // parts[0][0].rewards.shape[1]
    g = tokens.shape[0] // groups
    order = torch.randperm(groups, generator=generator, device="cpu")
    for chunk in order.chunk(max(1, min(minibatches, groups))):
        rows = (chunk[:, None] * g + torch.arange(g)[None, :]).reshape(-1).to(device)
        logp, _ = token_log_probs(policy, tokens[rows], width)
        ratio = torch.exp(logp - old[rows])
        a = advantage[rows, None]
        objective = torch.minimum(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a)
        per_rollout = (objective * mask[rows]).sum(dim=1) / lengths[rows]
        optimizer.zero_grad()
        (-per_rollout.mean()).backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return float(((entropy * mask).sum(dim=1) / lengths).mean())


def _left_pad(tokens: Tensor, width: int) -> Tensor:
    if tokens.shape[1] == width:
        return tokens
    pad = torch.full(
        (tokens.shape[0], width - tokens.shape[1]), PAD, dtype=tokens.dtype, device=tokens.device
    )
    return torch.cat([pad, tokens], dim=1)


@torch.no_grad()
def exact_accuracy(policy: Policy, problems: Sequence[Problem], chunk: int = 1024) -> float:
    """The expected accuracy of one sample at temperature 1, computed exactly: the mean over
    ``problems`` of pi(answer, <eos> | prompt), the probability that a sample is the right
    answer (exact checking admits no other right text). No sampling noise: one forward pass."""
    policy.eval()
    device = next(policy.parameters()).device
    total = 0.0
    for start in range(0, len(problems), chunk):
        part = problems[start : start + chunk]
        tokens, mask, head = batching.answered(part, device)
        logp, _ = token_log_probs(policy, tokens, head)
        total += float((logp * mask).sum(dim=1).exp().sum())
    return total / max(1, len(problems))
