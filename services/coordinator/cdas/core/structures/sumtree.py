"""Weighted sampling without replacement in O(k log N): a sum tree over per-prompt weights.

The tree is an implicit binary heap of capacity ``cap`` (a power of two >= N): leaves
``tree[cap + i]`` hold the weights, every inner node the sum of its two children. Setting m weights
recomputes only their ancestors, each as ``left + right`` (never by adding deltas), so the tree is a
pure function of the leaves: no rounding drift, and a rebuilt tree is bit-identical.

``sample`` implements successive sampling (draw one with probability w_i / sum w, remove it,
repeat) for a whole batch at once: draw the missing count i.i.d. from the current weights with a
vectorized descent (log2(cap) numpy steps for all draws together), keep first occurrences, zero the
chosen weights, and repeat for the shortfall. Keeping first occurrences of i.i.d. draws is exactly
successive sampling (a repeat is a rejected draw), so the distribution is the sequential one.
Zero-weight prompts are drawn only when no positive weight is left, uniformly among themselves.

The nodes are a float slot array (``cdas.core.structures.slots``) and the scalars are (n, cap,
positive), so the same algorithm runs in memory and on Redis; ``_descend`` is the one step a store
may replace (Redis walks the tree in a read-only script, with this call's pending writes applied).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cdas.core.arrays import first_occurrences, unique_sorted
from cdas.core.structures.slots import NumpySlots, Slots

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def capacity(n: int) -> int:
    """Leaves of the tree holding n weights: the smallest power of two >= max(n, 1)."""
    return 1 << max(0, (max(n, 1) - 1).bit_length())


def build_tree(leaves: FloatArray, cap: int) -> FloatArray:
    """All 2 * cap nodes of the tree over ``leaves`` (padded with zeros). O(cap)."""
    tree = np.zeros(2 * cap, dtype=np.float64)
    tree[cap : cap + leaves.size] = leaves
    for level in range(cap.bit_length() - 2, -1, -1):  # inner levels, bottom-up
        lo, hi = 1 << level, 2 << level
        kids = tree[2 * lo : 2 * hi]
        tree[lo:hi] = kids[0::2] + kids[1::2]
    return tree


class SumTree:
    """Weights of prompts 0..n-1 with O(log N) updates and weighted draws; see the module doc."""

    def __init__(
        self, nodes: Slots | None = None, counters: tuple[int, int, int] = (0, 1, 0)
    ) -> None:
        self._nodes = nodes if nodes is not None else NumpySlots(np.float64)
        self._n, self._cap, self._positive = counters

    @property
    def size(self) -> int:
        return self._n

    @property
    def counters(self) -> tuple[int, int, int]:
        """(n, cap, positive): the scalar state beside the node array."""
        return self._n, self._cap, self._positive

    @property
    def positive(self) -> int:
        """How many prompts have a positive weight."""
        return self._positive

    @property
    def total(self) -> float:
        return float(self._nodes.get(np.ones(1, dtype=np.int64))[0])

    def weights(self, idx: IntArray) -> FloatArray:
        leaves = idx + self._cap
        self._nodes.fetch(leaves)
        return self._nodes.get(leaves).astype(np.float64)

    def grow(self, m: int, weights: FloatArray) -> None:
        """Append m prompts with the given weights: O(m log N), or an O(N) rebuild when the
        capacity doubles or m is a quarter of N or more (the same tree either way)."""
        n = self._n + m
        if n > self._cap or 4 * m >= self._n:
            leaves = np.concatenate([self.leaves(), np.asarray(weights, dtype=np.float64)])
            self._cap = capacity(n)
            self._nodes.load(build_tree(leaves, self._cap))
            self._n, self._positive = n, int((leaves > 0).sum())
            return
        start = self._n
        self._n = n
        self.set(np.arange(start, n, dtype=np.int64), weights)

    def _path_nodes(self, leaves: IntArray) -> IntArray:
        """Every node whose value ``set`` reads for these leaves: siblings and the leaves."""
        levels = [leaves]
        node = leaves
        for _ in range(self._cap.bit_length() - 1):
            levels.append(node ^ 1)
            node = node >> 1
        return np.concatenate(levels)

    def set(self, idx: IntArray, weights: FloatArray) -> None:
        """Set the weights of distinct prompts ``idx``. O(m log N)."""
        if idx.size == 0:
            return
        leaf = idx + self._cap
        self._nodes.fetch(self._path_nodes(leaf))
        old = self._nodes.get(leaf)
        self._positive += int((weights > 0).sum()) - int((old > 0).sum())
        self._nodes.set(leaf, weights)
        node = unique_sorted(leaf >> 1)  # sorted, and stays sorted under >> 1
        for _ in range(self._cap.bit_length() - 1):  # one pass per inner level, leaves upward
            kids = self._nodes.get(np.concatenate([2 * node, 2 * node + 1]))
            self._nodes.set(node, kids[: node.size] + kids[node.size :])
            node >>= 1
            if node.size > 1:
                node = node[np.concatenate(([True], node[1:] != node[:-1]))]

    def _descend(self, u: FloatArray) -> IntArray:
        """Leaf reached by each target mass u in [0, total): go right when u >= left sum."""
        node = np.ones(u.size, dtype=np.int64)
        u = u.copy()
        for _ in range(self._cap.bit_length() - 1):
            left = self._nodes.get(2 * node)
            right = u >= left
            u -= np.where(right, left, 0.0)
            node = 2 * node + right
        return node - self._cap

    def sample(self, k: int, rng: np.random.Generator, exclude: IntArray | None = None) -> IntArray:
        """k distinct prompts (fewer if the prompts run out) by successive sampling proportional
        to weight, never one of ``exclude``; zero-weight prompts come only once the positive ones
        are exhausted, uniformly among themselves. Weights are left as they were.
        Expected O((k + len(exclude)) log N)."""
        blocked: list[tuple[IntArray, FloatArray]] = []
        parts: list[IntArray] = []
        got = 0
        try:
            if exclude is not None and exclude.size:
                excluded = unique_sorted(exclude[(exclude >= 0) & (exclude < self._n)])
                blocked.append((excluded, self.weights(excluded)))
                self.set(excluded, np.zeros(excluded.size))
            while got < k and self._positive > 0:
                leaves = self._descend(rng.random(k - got) * self.total)
                leaves = leaves[self.weights(leaves) > 0]  # rounding can reach a 0 leaf
                if leaves.size == 0:
                    continue
                new = first_occurrences(leaves)
                parts.append(new)
                got += new.size
                blocked.append((new, self.weights(new)))
                self.set(new, np.zeros(new.size))
        finally:
            for idx, weights in reversed(blocked):
                self.set(idx, weights)
        if got < k:
            taken = np.concatenate([b[0] for b in blocked]) if blocked else np.zeros(0, np.int64)
            parts.append(self._zero_weight(k - got, rng, taken))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _zero_weight(self, k: int, rng: np.random.Generator, taken: IntArray) -> IntArray:
        """Up to k distinct zero-weight prompts outside ``taken``, uniformly at random."""
        zeros = self._n - self._positive
        if 4 * (k + taken.size) >= zeros:  # few candidates: enumerate them, O(N) = O(k + taken)
            pool = np.flatnonzero(self.weights(np.arange(self._n, dtype=np.int64)) == 0)
            pool = pool[~np.isin(pool, taken)]
            return rng.permutation(pool)[:k].astype(np.int64)
        got = np.zeros(0, dtype=np.int64)  # most prompts qualify: rejection, expected O(k)
        while got.size < k:
            cand = rng.integers(0, self._n, size=2 * (k - got.size))
            cand = cand[(self.weights(cand) == 0) & ~np.isin(cand, taken)]
            got = first_occurrences(np.concatenate([got, cand]))[:k]
        return got

    # ------------------------------------------------------------------ snapshot
    def leaves(self) -> FloatArray:
        return self.weights(np.arange(self._n, dtype=np.int64))
