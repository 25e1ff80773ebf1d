"""The per-prompt state every strategy shares: CDAS difficulty D, update count t, last pass rate
and step, optional label, and the competence C.

Every run keeps D and C, whatever its strategy, so that dashboards and experiments can compare the
batches of any strategy on the same competence-difficulty scale. Strategies keep whatever else
they need (indexes, pools, posteriors) themselves.

Memory: 8 (D) + 4 (t) + 8 (last pass rate) + 8 (last step) bytes per prompt, +8 with labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from cdas.core.difficulty import CompetenceSum, updated_difficulty

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HISTOGRAM_BINS = 40
"""The difficulty histogram has 40 equal bins over [-1, 1] (width 0.05)."""


A = TypeVar("A", bound=npt.NDArray[Any])


def grow_array(a: A, n: int, fill: float) -> A:
    """``a`` with room for at least n entries (grown by half, new slots = ``fill``)."""
    if n <= a.size:
        return a
    out = np.full(max(n, a.size + a.size // 2), fill, dtype=a.dtype)
    out[: a.size] = a
    return out  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Update:
    """What one application of results changed, handed to the strategy's ``observe``."""

    idx: IntArray
    old_d: FloatArray
    new_d: FloatArray
    old_t: npt.NDArray[np.int32]
    new_t: npt.NDArray[np.int32]
    pass_rate: FloatArray
    total: IntArray
    step: int


class RunCore:
    """Shared per-prompt arrays (grown geometrically) and the exact competence sum."""

    def __init__(self) -> None:
        self.n = 0
        self._d = np.zeros(0, dtype=np.float64)
        self._t = np.zeros(0, dtype=np.int32)
        self._last_s = np.zeros(0, dtype=np.float64)
        self._last_step = np.zeros(0, dtype=np.int64)
        self._labels: FloatArray | None = None
        self.sum = CompetenceSum()
        self.hist = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        self.seen = 0

    # views of the live part ------------------------------------------------------------
    @property
    def d(self) -> FloatArray:
        return self._d[: self.n]

    @property
    def t(self) -> npt.NDArray[np.int32]:
        return self._t[: self.n]

    @property
    def last_pass_rate(self) -> FloatArray:
        """NaN for prompts without results yet."""
        return self._last_s[: self.n]

    @property
    def last_step(self) -> IntArray:
        """-1 for prompts without results yet."""
        return self._last_step[: self.n]

    @property
    def labels(self) -> FloatArray | None:
        """NaN for prompts registered without a label; None when no prompt has one."""
        return None if self._labels is None else self._labels[: self.n]

    @property
    def competence(self) -> float:
        return self.sum.competence(self.n)

    # changes ---------------------------------------------------------------------------
    def grow(self, m: int, labels: FloatArray | None = None) -> None:
        """Register m new prompts (D = 0, t = 0) with optional labels (NaN: none)."""
        n = self.n + m
        self._d = grow_array(self._d, n, 0.0)
        self._t = grow_array(self._t, n, 0)
        self._last_s = grow_array(self._last_s, n, np.nan)
        self._last_step = grow_array(self._last_step, n, -1)
        if labels is not None and not np.isnan(labels).all() and self._labels is None:
            self._labels = np.full(self._d.size, np.nan)
        if self._labels is not None:
            grown = grow_array(self._labels, n, np.nan)
            grown[self.n : n] = np.nan if labels is None else labels
            self._labels = grown
        self.n = n

    def apply(
        self,
        idx: IntArray,
        pass_rate: FloatArray,
        total: IntArray,
        competence: FloatArray,
        step: int,
    ) -> Update:
        """One CDAS update of distinct prompts ``idx`` with the competences the spec assigns them.
        O(m)."""
        old_d, old_t = self._d[idx], self._t[idx]
        new_d, new_t = updated_difficulty(old_d, old_t, competence, pass_rate)
        self._d[idx], self._t[idx] = new_d, new_t
        self._last_s[idx] = pass_rate
        self._last_step[idx] = step
        self.sum.add(old_d, new_d)
        was_seen = old_t > 0
        self.seen += int((~was_seen).sum())
        np.subtract.at(self.hist, bins(old_d[was_seen]), 1)
        np.add.at(self.hist, bins(new_d), 1)
        return Update(idx, old_d, new_d, old_t, new_t, pass_rate, total, step)

    # snapshot --------------------------------------------------------------------------
    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        out: dict[str, npt.NDArray[np.generic]] = {
            "d": self.d.copy(),
            "t": self.t.copy(),
            "last_pass_rate": self.last_pass_rate.copy(),
            "last_step": self.last_step.copy(),
        }
        if self._labels is not None:
            out["labels"] = self._labels[: self.n].copy()
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[np.generic]]) -> RunCore:
        out = cls()
        d = np.asarray(arrays["d"], dtype=np.float64)
        out.n = d.size
        out._d = d.copy()
        out._t = np.asarray(arrays["t"], dtype=np.int32).copy()
        out._last_s = np.asarray(arrays["last_pass_rate"], dtype=np.float64).copy()
        out._last_step = np.asarray(arrays["last_step"], dtype=np.int64).copy()
        if "labels" in arrays:
            out._labels = np.asarray(arrays["labels"], dtype=np.float64).copy()
        out.sum = CompetenceSum.of(out._d)
        seen = out._t > 0
        out.seen = int(seen.sum())
        out.hist = np.bincount(bins(out._d[seen]), minlength=HISTOGRAM_BINS).astype(np.int64)
        return out


def bins(d: FloatArray) -> IntArray:
    """Histogram bin of each difficulty: 40 equal bins over [-1, 1], the last one closed."""
    return np.minimum(((d + 1.0) * (HISTOGRAM_BINS / 2.0)).astype(np.int64), HISTOGRAM_BINS - 1)


def histogram_edges() -> list[float]:
    return [float(x) for x in np.linspace(-1.0, 1.0, HISTOGRAM_BINS + 1)]
