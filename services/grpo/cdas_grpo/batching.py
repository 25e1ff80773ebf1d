"""Tensors from problems: left-padded prompts, teacher-forced (prompt, answer) pairs, and the
exact-match check of sampled answers.

Everything the policy sees or is scored on goes through here, so the benchmark, the warm start and
the evaluation agree on one layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from cdas_grpo.task import EOS, PAD, Problem, decode, encode_answer, encode_prompt


def prompts(problems: Sequence[Problem], device: torch.device) -> Tensor:
    """The prompts' tokens, left-padded to the longest: (n, P)."""
    encoded = [encode_prompt(p.text) for p in problems]
    width = max(len(e) for e in encoded)
    out = torch.full((len(encoded), width), PAD, dtype=torch.long)
    for row, e in enumerate(encoded):
        out[row, width - len(e) :] = torch.tensor(e)
    return out.to(device)


def answered(problems: Sequence[Problem], device: torch.device) -> tuple[Tensor, Tensor, int]:
    """Prompts with their right answers appended: (tokens (n, P + A), answer mask (n, A), P).
    The mask is 1 on the answer's digits and its ``<eos>``, 0 on the right padding."""
    head = prompts(problems, device)
    answers = [encode_answer(p.answer) for p in problems]
    width = max(len(a) for a in answers)
    tail = torch.full((len(answers), width), PAD, dtype=torch.long)
    mask = torch.zeros(len(answers), width)
    for row, a in enumerate(answers):
        tail[row, : len(a)] = torch.tensor(a)
        mask[row, : len(a)] = 1.0
    return torch.cat([head, tail.to(device)], dim=1), mask.to(device), head.shape[1]


def max_new_tokens(problems: Sequence[Problem]) -> int:
    """Room for the longest possible answer of these problems' rungs and its ``<eos>``."""
    return max(p.rung.answer_length() for p in problems) + 1


def correct(problems: Sequence[Problem], completions: Tensor, group: int) -> Tensor:
    """(n, G) 0/1 rewards: rollout j of problem i is right when its text before ``<eos>`` equals
    the answer exactly and it did end (a rollout cut off by the length limit is wrong)."""
    rows = completions.tolist()
    out = torch.zeros(len(problems), group)
    for i, problem in enumerate(problems):
        for j in range(group):
            tokens = rows[i * group + j]
            out[i, j] = float(EOS in tokens and decode(tokens) == problem.answer)
    return out
