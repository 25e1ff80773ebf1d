"""What a run remembers per step: the batches it issued (for idempotent ``next_batch``), which
prompts' results it applied (so a retry is a duplicate), and the step's statistics (history).

Batches and applied sets are kept for the latest ``retain_steps`` steps (default 1024, about 12 KB
per step at B = 1024: prompt indexes are int32); a request for an older step is a conflict, since
its duplicates could no longer be recognized. Statistics are kept for every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cdas.core.difficulty import FIXED_SCALE
from cdas.core.views import StepSummary

IntArray = npt.NDArray[np.int64]
SmallIntArray = npt.NDArray[np.int32]

RETAIN_STEPS = 1024


@dataclass(slots=True)
class RoundRecord:
    """One issued batch: prompt indexes in batch order and the competence it was chosen with."""

    ids: SmallIntArray
    competence: float
    sorted_ids: SmallIntArray = field(init=False)

    def __post_init__(self) -> None:
        self.ids = self.ids.astype(np.int32)
        self.sorted_ids = np.sort(self.ids)

    def contains(self, idx: IntArray) -> npt.NDArray[np.bool_]:
        """Membership of each of ``idx`` in this batch. O(m log B)."""
        if self.sorted_ids.size == 0:
            return np.zeros(idx.size, dtype=np.bool_)
        pos = np.minimum(np.searchsorted(self.sorted_ids, idx), self.sorted_ids.size - 1)
        found: npt.NDArray[np.bool_] = self.sorted_ids[pos] == idx
        return found


@dataclass(slots=True)
class StepRecord:
    """The retained part of a step: its rounds and the prompts whose results were applied."""

    rounds: list[RoundRecord] = field(default_factory=list)
    applied: SmallIntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def issued(self) -> IntArray:
        if not self.rounds:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([r.ids for r in self.rounds]).astype(np.int64)


@dataclass(slots=True)
class StepStats:
    """Running statistics of one step, kept for the whole run.

    The pass rates are summed exactly, in fixed point (``to_fixed``), so the statistics do not
    depend on the order in which concurrent writers' results were applied.
    """

    step: int
    competence: float = 0.0
    batch_size: int = 0
    results: int = 0
    pass_fixed: int = 0
    zero_gradient: int = 0
    rollouts: int = 0

    def summary(self) -> StepSummary:
        n = self.results
        return StepSummary(
            step=self.step,
            competence=self.competence,
            mean_pass_rate=(self.pass_fixed / n) / FIXED_SCALE if n else None,
            zero_gradient_ratio=self.zero_gradient / n if n else None,
            batch_size=self.batch_size,
            results=n,
            rollouts=self.rollouts,
        )

    def to_list(self) -> list[float | int]:
        return [
            self.step,
            self.competence,
            self.batch_size,
            self.results,
            self.pass_fixed,
            self.zero_gradient,
            self.rollouts,
        ]

    @classmethod
    def from_list(cls, row: list[float | int]) -> StepStats:
        step, comp, size, results, pass_fixed, zero, rollouts = row
        return cls(
            int(step),
            float(comp),
            int(size),
            int(results),
            int(pass_fixed),
            int(zero),
            int(rollouts),
        )
