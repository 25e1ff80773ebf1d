"""Baselines the core benchmark compares against, implementing the same CDAS step.

* ``AuthorsStyleCdas``: the way the authors' release (``verl/utils/dataset/rl_cdas_dataset.py``,
  class ``CDAS_System``) works: a dict from prompt key to its list of difficulties, a Python
  loop over all N prompts to split them around the competence, a full sort of each side at every
  selection, and a loop over all N to recompute the competence after an update. The arithmetic
  follows ``shared/CDAS.md`` (no pseudo-observation), so only the algorithmic cost differs.
* ``FullSortCdas``: the same step vectorized with numpy but without an index: a full argsort of D
  and a full sum per step. It shows what the ordered index buys beyond vectorization.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class AuthorsStyleCdas:
    def __init__(self, prompt_ids: Sequence[str]) -> None:
        self.difficulties: dict[str, list[float]] = {pid: [0.0] for pid in prompt_ids}
        self.competence = 0.0

    def select(self, size: int) -> list[str]:
        c = self.competence
        lower = [(pid, h[-1]) for pid, h in self.difficulties.items() if h[-1] <= c]
        higher = [(pid, h[-1]) for pid, h in self.difficulties.items() if h[-1] > c]
        lower.sort(key=lambda item: -item[1])
        higher.sort(key=lambda item: item[1])
        half = size // 2
        take_lo = min(half, len(lower))
        take_hi = min(size - take_lo, len(higher))
        take_lo = min(size - take_hi, len(lower))
        return [pid for pid, _ in lower[:take_lo]] + [pid for pid, _ in higher[:take_hi]]

    def update(self, results: Sequence[tuple[str, float]]) -> None:
        c = self.competence
        for pid, s in results:
            history = self.difficulties[pid]
            d_prev = history[-1]
            expected = 1.0 / (1.0 + math.exp(d_prev - c))
            t = len(history)  # history starts with the initial 0: t-th update
            history.append(d_prev + (expected - s - d_prev) / t)
        total = 0.0
        for history in self.difficulties.values():
            total += history[-1]
        self.competence = -total / len(self.difficulties)


class FullSortCdas:
    def __init__(self, n: int) -> None:
        self.d = np.zeros(n)
        self.t = np.zeros(n, dtype=np.int64)
        self.competence = 0.0

    def select(self, size: int) -> npt.NDArray[np.int64]:
        order = np.argsort(self.d, kind="stable")
        split = int(np.searchsorted(self.d[order], self.competence, side="right"))
        take_lo = min(size // 2, split)
        take_hi = min(size - take_lo, self.d.size - split)
        take_lo = min(size - take_hi, split)
        return np.concatenate([order[split - take_lo : split], order[split : split + take_hi]])

    def update(self, idx: npt.NDArray[np.int64], s: npt.NDArray[np.float64]) -> None:
        d = self.d[idx]
        self.t[idx] += 1
        self.d[idx] = d + (1.0 / (1.0 + np.exp(d - self.competence)) - s - d) / self.t[idx]
        self.competence = -float(self.d.sum()) / self.d.size
