"""An ordered index of prompts by (difficulty, tie key) with batched, vectorized updates.

CDAS selects, every step, the prompts whose difficulty sits nearest the competence on each side.
A full sort per step is O(N log N); this index keeps the order instead and answers in O(B):

* Keys are complex numbers ``z = D + 1j * key``: numpy orders complex values lexicographically
  (real part, then imaginary part), so one sorted complex array orders by D and breaks ties by the
  prompt's random tie key (``cdas.core.randomness.tie_keys``), uniformly at random.
* Entries live in fixed-capacity rows (``cap`` slots, a sorted run of keys each), the rows in a
  logical order given by ``order``, and ``fences[l]``, the smallest key row l may hold
  (``fences[0]`` is -inf): row l holds exactly the keys in [fences[l], fences[l+1]).
  This is a B+ tree of height two whose leaves are numpy rows.
* ``update`` applies a whole step's changes at once: it finds the touched rows with one
  ``searchsorted`` over the fences, gathers their entries (sorted, since the rows are taken in
  logical order), drops the removed ones (found by bisection), merges the inserted ones (one linear
  merge), splits rows that overflow into pieces of 3/4 capacity and unlinks rows that empty.
  Cost for m changes: O(m log N + m * cap) element operations, plus, when rows split or empty,
  one contiguous copy of the fence arrays (16 + 4 bytes per row, a row per ~24 prompts: 3.3 MB at
  N = 4 million, well under a millisecond).
* ``nearest(c, below, above)`` finds the row holding c (O(log N)) and walks outward gathering whole
  rows, nearest first: O(B + cap).

Memory: 20 bytes per slot, rows about 3/4 full: about 28 bytes per prompt with cap = 32 (measured
by ``cdas bench core`` as part of the run's bytes per prompt).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cdas.core.arrays import unique_sorted

ComplexArray = npt.NDArray[np.complex128]
IntArray = npt.NDArray[np.int64]

NEG_INF = complex(-np.inf, -np.inf)


class OrderedIndex:
    """Prompt indexes ordered by complex keys; see the module docstring."""

    def __init__(self, cap: int = 32) -> None:
        if cap < 8:
            raise ValueError(f"row capacity {cap} is below 8")
        self._cap = cap
        self._target = cap * 3 // 4
        self._cols = np.arange(cap)
        self._mark = np.zeros(0, dtype=np.bool_)
        self._load(np.zeros(0, dtype=np.complex128), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return self._n

    @property
    def rows(self) -> int:
        return int(self._order.size)

    # ------------------------------------------------------------------ building
    def _load(self, z: ComplexArray, idx: IntArray) -> None:
        """Replace the content by ``(z, idx)``, already sorted by z. O(N)."""
        n = z.size
        rows = max(1, -(-n // self._target))
        alloc = rows + rows // 4 + 1
        self._z = np.zeros((alloc, self._cap), dtype=np.complex128)
        self._i = np.zeros((alloc, self._cap), dtype=np.int32)
        self._fill = np.zeros(alloc, dtype=np.int32)
        sizes = np.full(rows, n // rows, dtype=np.int64)
        sizes[: n % rows] += 1
        starts = np.cumsum(sizes) - sizes
        row = np.repeat(np.arange(rows), sizes)
        col = np.arange(n) - starts[row]
        self._z[row, col] = z
        self._i[row, col] = idx
        self._fill[:rows] = sizes
        self._fences = np.full(rows, NEG_INF, dtype=np.complex128)
        if rows > 1:
            self._fences[1:] = z[starts[1:]]
        self._order = np.arange(rows, dtype=np.int32)
        self._free = list(range(alloc - 1, rows - 1, -1))
        self._n = n
        if n:
            self._ensure_mark(int(idx.max()))

    def _ensure_mark(self, max_idx: int) -> None:
        if max_idx >= self._mark.size:
            self._mark = np.zeros(max(max_idx + 1, 2 * self._mark.size), dtype=np.bool_)

    def _alloc(self, k: int) -> IntArray:
        """k free physical rows, growing the row arrays by a quarter when needed."""
        if len(self._free) < k:
            have = self._fill.size
            grow = max(k - len(self._free), have // 4 + 1)
            self._z = np.concatenate([self._z, np.zeros((grow, self._cap), np.complex128)])
            self._i = np.concatenate([self._i, np.zeros((grow, self._cap), np.int32)])
            self._fill = np.concatenate([self._fill, np.zeros(grow, np.int32)])
            self._free.extend(range(have + grow - 1, have - 1, -1))
        taken = self._free[-k:]
        del self._free[-k:]
        return np.asarray(taken, dtype=np.int64)

    def entries(self) -> tuple[ComplexArray, IntArray]:
        """All (key, prompt) pairs in key order. O(N)."""
        rows = self._order
        valid = self._cols < self._fill[rows][:, None]
        return self._z[rows][valid], self._i[rows][valid].astype(np.int64)

    # ------------------------------------------------------------------ updates
    def insert(self, idx: IntArray, z: ComplexArray) -> None:
        self.update(np.zeros(0, np.int64), np.zeros(0, np.complex128), idx, z)

    def update(
        self,
        remove_idx: IntArray,
        remove_z: ComplexArray,
        insert_idx: IntArray,
        insert_z: ComplexArray,
    ) -> None:
        """Remove the entries ``(remove_z, remove_idx)`` (present, distinct) and insert the new
        ``(insert_z, insert_idx)``. The same prompt may be in both (its key changed)."""
        m_rm, m_in = remove_idx.size, insert_idx.size
        if m_rm + m_in == 0:
            return
        if m_in:
            self._ensure_mark(int(insert_idx.max()))
        if 2 * (m_rm + m_in) > self._n + m_in:  # most of the index changes: rebuild
            self._rebuild(remove_idx, insert_idx, insert_z)
            return
        fences, cap = self._fences, self._cap
        lin = np.zeros(0, dtype=np.int64)
        if m_in:
            o = np.argsort(insert_z, kind="stable")
            insert_z, insert_idx = insert_z[o], insert_idx[o]
            lin = np.searchsorted(fences, insert_z, side="right") - 1
        rm_rows = np.zeros(0, dtype=np.int64)
        if m_rm:
            hi = np.searchsorted(fences, remove_z, side="right") - 1
            lo = np.maximum(np.searchsorted(fences, remove_z, side="left") - 1, 0)
            spans = hi - lo  # > 0 only for a key equal to a fence: check both rows
            rm_rows = hi if not spans.any() else np.concatenate([hi, lo[spans > 0]])
        touched = unique_sorted(np.concatenate([rm_rows, lin]))
        t = touched.size
        prow = self._order[touched].astype(np.int64)
        # flat slot numbers of the touched rows' entries, row by row: O(entries), no (T, cap) temps
        fill = self._fill[prow].astype(np.int64)
        n_old = int(fill.sum())
        first_slot = np.cumsum(fill) - fill
        flat = np.repeat(prow * cap - first_slot, fill) + np.arange(n_old)
        z_flat, i_flat = self._z.reshape(-1), self._i.reshape(-1)
        mz, mi = z_flat[flat], i_flat[flat]
        mrow = np.repeat(np.arange(t), fill)
        if m_rm:  # mz is sorted (touched rows in logical order): find removed keys by bisection
            pos = np.minimum(np.searchsorted(mz, remove_z, side="left"), max(n_old - 1, 0))
            if n_old == 0 or (mi[pos] != remove_idx).any():  # equal keys (rare): match by prompt
                self._mark[remove_idx] = True
                pos = np.flatnonzero(self._mark[mi])
                self._mark[remove_idx] = False
            keep = np.ones(n_old, dtype=np.bool_)
            keep[pos] = False
            if n_old - int(keep.sum()) != m_rm:
                raise RuntimeError("ordered index: some entries to remove are absent")
            mz, mi, mrow = mz[keep], mi[keep], mrow[keep]
        if m_in:
            at = np.searchsorted(mz, insert_z, side="right")
            mz = np.insert(mz, at, insert_z)
            mi = np.insert(mi, at, insert_idx.astype(np.int32))
            mrow = np.insert(mrow, at, np.searchsorted(touched, lin))
        cnt = np.bincount(mrow, minlength=t)
        pieces = np.where(cnt > cap, -(-cnt // self._target), (cnt > 0).astype(np.int64))
        if not pieces.any() and t == self._order.size:
            pieces[0] = 1  # the index empties: keep one empty row
        pbase = np.cumsum(pieces) - pieces
        total = int(pieces.sum())
        owner = np.repeat(np.arange(t), pieces)
        first = np.zeros(total, dtype=np.bool_)
        first[pbase[pieces > 0]] = True
        piece = pbase[mrow]
        split = pieces > 1
        if split.any():  # spread the entries of overflowing rows evenly over their pieces
            starts = np.cumsum(cnt) - cnt
            big = np.flatnonzero(split[mrow])
            rows_big = mrow[big]
            piece[big] += (big - starts[rows_big]) * pieces[rows_big] // cnt[rows_big]
        psize = np.bincount(piece, minlength=total)
        pstart = np.cumsum(psize) - psize
        phys = np.zeros(total, dtype=np.int64)
        phys[first] = prow[owner[first]]
        extra = ~first
        n_extra = int(extra.sum())
        if n_extra:
            phys[extra] = self._alloc(n_extra)
            z_flat, i_flat = self._z.reshape(-1), self._i.reshape(-1)
        out = phys[piece] * cap + (np.arange(mz.size) - pstart[piece])
        z_flat[out] = mz
        i_flat[out] = mi
        self._fill[phys] = psize
        dead = pieces == 0
        if dead.any():
            self._fill[prow[dead]] = 0
            self._free.extend(prow[dead].tolist())
        if n_extra or dead.any():
            at_l = touched[owner[extra]] + 1
            new_f = np.insert(fences, at_l, mz[pstart[extra]])
            new_o = np.insert(self._order, at_l, phys[extra].astype(np.int32))
            if dead.any():
                gone = touched[dead]
                gone = gone + np.searchsorted(at_l, gone, side="right")
                new_f, new_o = np.delete(new_f, gone), np.delete(new_o, gone)
            new_f[0] = NEG_INF
            self._fences, self._order = new_f, new_o
        self._n += m_in - m_rm

    def _rebuild(self, remove_idx: IntArray, insert_idx: IntArray, insert_z: ComplexArray) -> None:
        z, idx = self.entries()
        if remove_idx.size:
            self._mark[remove_idx] = True
            keep = ~self._mark[idx]
            self._mark[remove_idx] = False
            if int((~keep).sum()) != remove_idx.size:
                raise RuntimeError("ordered index: entries to remove are absent")
            z, idx = z[keep], idx[keep]
        z = np.concatenate([z, insert_z])
        idx = np.concatenate([idx, insert_idx.astype(np.int64)])
        o = np.argsort(z, kind="stable")
        self._load(z[o], idx[o])

    # ------------------------------------------------------------------ queries
    def nearest(
        self, c: float, below: int, above: int, exclude: IntArray | None = None
    ) -> IntArray:
        """The ``below`` entries with the largest keys whose real part is <= c (nearest first) and
        the ``above`` entries with the smallest keys whose real part is > c, skipping ``exclude``.
        A side that runs short is made up from the other side, next nearest first.
        O(log N + (below + above + len(exclude)) * cap / fill)."""
        zc = complex(c, np.inf)
        lrow = int(np.searchsorted(self._fences, zc, side="right")) - 1
        row = int(self._order[lrow])
        p = int(np.searchsorted(self._z[row, : self._fill[row]], zc, side="left"))
        if exclude is not None and exclude.size:
            self._ensure_mark(int(exclude.max()))
            self._mark[exclude] = True
        try:
            lo = self._collect(lrow, p, below, -1)
            hi = self._collect(lrow, p, above + below - lo.size, +1)
            if lo.size == below and lo.size + hi.size < below + above:
                lo = self._collect(lrow, p, below + above - hi.size, -1)
        finally:
            if exclude is not None and exclude.size:
                self._mark[exclude] = False
        return np.concatenate([lo, hi])

    def _collect(self, lrow: int, p: int, need: int, direction: int) -> IntArray:
        """Up to ``need`` unmarked prompts walking from position p of logical row ``lrow``:
        downward (direction -1: positions < p, then rows lrow-1, lrow-2, ...) or upward (positions
        >= p, then rows lrow+1, ...)."""
        if need <= 0:
            return np.zeros(0, dtype=np.int64)
        row = int(self._order[lrow])
        seg = self._i[row, :p][::-1] if direction < 0 else self._i[row, p : self._fill[row]]
        seg = seg[~self._mark[seg]][:need]
        parts, got = [seg], int(seg.size)
        lrow += direction
        rows_total = self._order.size
        while got < need and 0 <= lrow < rows_total:
            k = max(2, 2 * (need - got) // self._target + 1)
            if direction < 0:
                ls = np.arange(lrow, max(lrow - k, -1), -1)
                vals = self._i[self._order[ls]][:, ::-1]
                vals = vals[self._cols >= self._cap - self._fill[self._order[ls]][:, None]]
            else:
                ls = np.arange(lrow, min(lrow + k, rows_total))
                vals = self._i[self._order[ls]]
                vals = vals[self._cols < self._fill[self._order[ls]][:, None]]
            vals = vals[~self._mark[vals]][: need - got]
            parts.append(vals)
            got += int(vals.size)
            lrow += direction * ls.size
        return np.concatenate(parts).astype(np.int64)

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Verify every structural invariant (tests and debugging; O(N))."""
        rows = self._order
        fills = self._fill[rows]
        if rows.size > 1 and (fills < 1).any():
            raise AssertionError("an empty row is still linked")
        if (fills > self._cap).any():
            raise AssertionError("a row overflows")
        if self._fences[0] != NEG_INF:
            raise AssertionError("the first fence is not -inf")
        z, idx = self.entries()
        if z.size != self._n:
            raise AssertionError(f"{z.size} entries, expected {self._n}")
        if z.size > 1 and bool((z[1:] < z[:-1]).any()):
            raise AssertionError("keys out of order")
        if unique_sorted(idx).size != idx.size:
            raise AssertionError("a prompt is indexed twice")
        for lrow in range(1, rows.size):
            row = rows[lrow]
            if self._z[row, 0] < self._fences[lrow]:
                raise AssertionError(f"row {lrow} holds a key below its fence")
            prev = rows[lrow - 1]
            if self._z[prev, self._fill[prev] - 1] > self._fences[lrow]:
                raise AssertionError(f"row {lrow - 1} holds a key above the next fence")
