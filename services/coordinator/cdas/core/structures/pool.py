"""Uniform sampling without replacement, with epochs, in O(k) per draw of k.

Layout (a partial Fisher-Yates shuffle that is never completed): ``items[:live]`` are the members
not yet drawn in this epoch, ``items[live:size]`` those already drawn; ``pos[idx]`` is where prompt
idx sits (-1: not a member). A draw of k picks k distinct positions uniformly in [0, live) and swaps
them to the end of the live region; a new epoch is ``live = size`` (O(1)). Every k-subset of the
live members is equally likely, and the result depends only on the layout and the random stream,
both reproducible.

The state is two slot arrays (``cdas.core.structures.slots``) and three counters, so the same
algorithm runs on numpy arrays and on Redis strings; each phase announces the slots it will read
(``fetch``) before reading them, which lets the Redis store serve a phase in one round trip.

Used by random sampling (epochs), CDAS's warm-up (one epoch) and its retired prompts (members come
and go with ``add`` and ``remove``), dynamic sampling, curriculum levels and the candidate pools of
MoPPS and learnability.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cdas.core.arrays import first_occurrences, unique_sorted
from cdas.core.structures.slots import NumpySlots, Slots

IntArray = npt.NDArray[np.int64]


def _span(start: int, stop: int) -> IntArray:
    return np.arange(start, max(start, stop), dtype=np.int64)


class UniformPool:
    """A set of prompt indexes to draw from uniformly without replacement; see the module doc."""

    def __init__(
        self,
        items: Slots | None = None,
        pos: Slots | None = None,
        counters: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        self._items = items if items is not None else NumpySlots(np.int32)
        self._pos = pos if pos is not None else NumpySlots(np.int32, fill=-1)
        self._size, self._live, self.epoch = counters

    @property
    def size(self) -> int:
        return self._size

    @property
    def live(self) -> int:
        """Members not yet drawn in the current epoch."""
        return self._live

    @property
    def counters(self) -> tuple[int, int, int]:
        """(size, live, epoch): the scalar state beside the two slot arrays."""
        return self._size, self._live, self.epoch

    # ------------------------------------------------------------------ membership
    def add(self, idx: IntArray) -> None:
        """Add new members (not yet drawn in this epoch). O(len(idx))."""
        m = idx.size
        if m == 0:
            return
        # Move up to m drawn members from the front of the drawn region to the end, then put the
        # new members right after the live region.
        moved = min(self._size - self._live, m)
        src = _span(self._live, self._live + moved)
        dst = _span(self._size + m - moved, self._size + m)
        self._items.fetch(src)
        shifted = self._items.get(src).astype(np.int64)
        self._items.set(dst, shifted)
        self._pos.set(shifted, dst)
        slots = _span(self._live, self._live + m)
        self._items.set(slots, idx)
        self._pos.set(idx, slots)
        self._size += m
        self._live += m

    def discard(self, idx: IntArray) -> None:
        """Count the live members among ``idx`` as drawn in this epoch. O(len(idx))."""
        self._hold(idx)

    def contains(self, idx: IntArray) -> npt.NDArray[np.bool_]:
        """Whether each of ``idx`` is a member (drawn in this epoch or not). O(len(idx))."""
        self._pos.fetch(idx)
        return self._pos.get(idx) >= 0

    def remove(self, idx: IntArray) -> None:
        """Take the members ``idx`` (distinct; non-members are ignored) out of the pool for good.

        Live ones are swapped to the end of the live region and counted as drawn, then every one
        is swapped to the end of the drawn region and cut off: O(len(idx)), like a draw; the
        other members keep their status (live or drawn in this epoch)."""
        self._pos.fetch(idx)
        positions = self._pos.get(idx).astype(np.int64)
        positions = positions[positions >= 0]
        k = positions.size
        if k == 0:
            return
        live, drawn = positions[positions < self._live], positions[positions >= self._live]
        self._items.fetch(np.concatenate([live, _span(self._live - live.size, self._live)]))
        self._to_tail(live, self._live)  # now at [live - a, live): the front of the drawn region
        self._live -= live.size
        at = np.concatenate([_span(self._live, self._live + live.size), drawn])
        self._items.fetch(np.concatenate([at, _span(self._size - k, self._size)]))
        self._to_tail(at, self._size)
        self._size -= k
        gone = self._items.get(_span(self._size, self._size + k)).astype(np.int64)
        self._pos.set(gone, np.full(k, -1, dtype=np.int64))

    def clear(self) -> None:
        """Forget every member (free the arrays). For a pool whose members are all drawn and that
        never starts a new epoch (CDAS's warm-up), this changes no later answer: new members make
        the same live region either way. O(1)."""
        empty = np.zeros(0, dtype=np.int32)
        self._items.load(empty)
        self._pos.load(empty)
        self._size = self._live = 0

    def reset(self) -> None:
        """Start a new epoch: every member can be drawn again. O(1)."""
        self._live = self._size
        self.epoch += 1

    # ------------------------------------------------------------------ drawing
    def _to_tail(self, positions: IntArray, end: int) -> None:
        """Swap the distinct ``positions`` (all < end) to [end - k, end), keeping the rest.
        The caller has fetched ``positions`` and the tail [end - k, end)."""
        k = positions.size
        if k == 0:
            return
        tail_start = end - k
        outside = positions[positions < tail_start]
        if outside.size:
            tail = _span(tail_start, end)
            free = tail[~np.isin(tail, positions, assume_unique=True)]
            a = self._items.get(outside).astype(np.int64)
            b = self._items.get(free).astype(np.int64)
            self._items.set(outside, b)
            self._items.set(free, a)
            self._pos.set(b, outside)
            self._pos.set(a, free)

    def _positions(self, k: int, live: int, rng: np.random.Generator) -> IntArray:
        """k distinct positions, uniform over [0, live), in random order. Expected O(k)."""
        if 2 * k >= live:
            return rng.permutation(live)[:k].astype(np.int64)
        got = np.zeros(0, dtype=np.int64)
        while got.size < k:
            more = rng.integers(0, live, size=k - got.size)
            got = first_occurrences(np.concatenate([got, more]))
        return got

    def draw(
        self,
        k: int,
        rng: np.random.Generator,
        exclude: IntArray | None = None,
        epochs: bool = False,
    ) -> IntArray:
        """Draw up to k live members uniformly without replacement, never one of ``exclude``.

        With ``epochs``, when fewer than k remain, the rest of the epoch is taken and a new epoch
        starts to supply the others (never repeating a member within the draw). Returns fewer than
        k only when the members (minus ``exclude``) run out. O(k + len(exclude)).
        """
        token = self._hold(exclude)
        out = self._draw_live(min(k, self._live), rng)
        self._release(token)
        if epochs and out.size < k and self._size > 0:
            self.reset()
            token = self._hold(out if exclude is None else np.concatenate([out, exclude]))
            more = self._draw_live(min(k - out.size, self._live), rng)
            self._release(token)
            out = np.concatenate([out, more])
        return out

    def _live_positions(self, idx: IntArray) -> IntArray:
        """Distinct positions of the live members among ``idx``, ascending."""
        members = idx[idx >= 0]
        self._pos.fetch(members)
        positions = self._pos.get(members).astype(np.int64)
        return unique_sorted(positions[(positions >= 0) & (positions < self._live)])

    def available(self, exclude: IntArray | None = None) -> int:
        """Live members that are not in ``exclude``. O(len(exclude))."""
        if exclude is None or exclude.size == 0:
            return self._live
        return self._live - int(self._live_positions(exclude).size)

    def _draw_live(self, k: int, rng: np.random.Generator) -> IntArray:
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        positions = self._positions(k, self._live, rng)
        self._items.fetch(np.concatenate([positions, _span(self._live - k, self._live)]))
        out = self._items.get(positions).astype(np.int64)
        self._to_tail(positions, self._live)
        self._live -= k
        return out

    def _hold(self, exclude: IntArray | None) -> tuple[int, int]:
        """Move the live members of ``exclude`` just past the live region, out of reach of draws.

        Returns the token for ``_release``: (members held, live count right after holding).
        """
        if exclude is None or exclude.size == 0:
            return 0, self._live
        self._items.fetch(_span(max(0, self._live - exclude.size), self._live))  # tail it may use
        positions = self._live_positions(exclude)
        self._items.fetch(positions)
        self._to_tail(positions, self._live)
        self._live -= positions.size
        return int(positions.size), self._live

    def _release(self, token: tuple[int, int]) -> None:
        """Undo ``_hold``: the k members drawn since sit before the held block; rotate so the held
        block rejoins the live region and the drawn ones follow it. O(k + held)."""
        held, mark = token
        if held == 0:
            return
        drawn = mark - self._live
        span = _span(self._live, self._live + drawn + held)
        self._items.fetch(span)
        segment = self._items.get(span).astype(np.int64)
        rotated = np.concatenate([segment[drawn:], segment[:drawn]])
        self._items.set(span, rotated)
        self._pos.set(rotated, span)
        self._live += held

    # ------------------------------------------------------------------ snapshot
    def to_arrays(self) -> dict[str, IntArray]:
        """The layout (members in order) and the counters: everything a restore needs."""
        return {
            "items": self._items.dump(self._size).astype(np.int64),
            "counters": np.array([self._live, self.epoch], dtype=np.int64),
        }

    def load(self, arrays: dict[str, npt.NDArray[np.int64]]) -> None:
        """Take the layout and counters of ``to_arrays`` (a restore)."""
        items = np.asarray(arrays["items"], dtype=np.int64)
        self._items.load(items.astype(np.int32))
        pos = np.full(int(items.max()) + 1 if items.size else 0, -1, dtype=np.int32)
        pos[items] = np.arange(items.size, dtype=np.int32)
        self._pos.load(pos)
        self._size = int(items.size)
        self._live, self.epoch = (int(v) for v in arrays["counters"])
