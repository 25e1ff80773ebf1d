"""CDAS: Competence-Difficulty Alignment Sampling (Kong et al., AAAI 2026), per ``shared/CDAS.md``.

Selection at step n uses C_{n-1} and D: with A(x) = |C - D(x)|, take the floor(B/2) prompts with
D <= C nearest C (largest D first) and the ceil(B/2) with D > C nearest C (smallest D first); a side
that runs short is made up from the other, next nearest first. Ties in D are broken by a fresh
random key drawn at every update (uniform, reproducible from the seed).

Warm-up (``warmup``, default true): while never-sampled prompts remain, a batch is drawn uniformly
from them; the epoch's last partial batch is topped up by the selection above. A prompt counts as
sampled once it was issued in a batch or once results for it arrived (then it has a difficulty,
which is what the warm-up is for: results posted for every prompt before the first batch, say from
an earlier run, end the warm-up).

Cost per step: O(B log N + B * cap) with the ordered index; the warm-up pool draws in O(B).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cdas.core.params import Param, boolean
from cdas.core.randomness import tie_keys
from cdas.core.strategies.base import (
    Arrays,
    FloatArray,
    IntArray,
    Request,
    Strategy,
    Update,
    register,
)
from cdas.core.structures.ordered import ComplexArray

if TYPE_CHECKING:
    from cdas.core.engine import RunView
    from cdas.core.space import RunSpace


@register
class Cdas(Strategy):
    name = "cdas"
    params = (
        Param(
            "warmup",
            True,
            boolean,
            "first epoch uniformly at random without replacement, so every prompt has a difficulty "
            "before alignment-based selection starts",
        ),
    )

    def __init__(self, params: dict[str, Any], seed: int, space: RunSpace) -> None:
        super().__init__(params, seed, space)
        self.index = space.ordered_index("cdas")
        self.pool = space.pool("warmup") if params["warmup"] else None

    def keys(self, d: np.ndarray, idx: IntArray, t: np.ndarray) -> ComplexArray:
        """Index keys: difficulty, ties broken by the update's random key."""
        keys: ComplexArray = d + 1j * tie_keys(self.seed, idx, t)
        return keys

    def add(self, view: RunView, start: int, stop: int, labels: FloatArray | None) -> None:
        idx = np.arange(start, stop, dtype=np.int64)
        zero = np.zeros(idx.size)
        self.index.insert(idx, self.keys(zero, idx, zero.astype(np.int32)))
        if self.pool is not None:
            self.pool.add(idx)

    def select(self, view: RunView, request: Request) -> IntArray:
        warm = np.zeros(0, dtype=np.int64)
        if self.pool is not None and self.pool.live:
            warm = self.pool.draw(request.size, request.rng, exclude=request.exclude)
            self._end_warmup()
        rest = request.size - warm.size
        if rest == 0:
            return warm
        exclude = request.exclude if warm.size == 0 else np.concatenate([request.exclude, warm])
        near = self.index.nearest(view.competence, rest // 2, rest - rest // 2, exclude)
        return np.concatenate([warm, near])

    def observe(self, view: RunView, update: Update) -> None:
        idx = update.idx
        if self.pool is not None and self.pool.live:
            self.pool.discard(idx)
            self._end_warmup()
        self.index.update(
            idx,
            self.keys(update.old_d, idx, update.old_t),
            idx,
            self.keys(update.new_d, idx, update.new_t),
        )

    def _end_warmup(self) -> None:
        """Once every prompt is sampled, the warm-up pool's arrays are dead weight: free them."""
        if self.pool is not None and self.pool.live == 0 and self.pool.size:
            self.pool.clear()

    def dump(self) -> Arrays:
        return (
            {}
            if self.pool is None
            else {f"warmup_{k}": v for k, v in self.pool.to_arrays().items()}
        )

    def load(self, view: RunView, core: Arrays, own: Arrays) -> None:
        idx = np.arange(view.n, dtype=np.int64)
        self.index.insert(idx, self.keys(core["d"], idx, core["t"]))
        if self.pool is not None:
            self.pool.load({"items": own["warmup_items"], "counters": own["warmup_counters"]})
