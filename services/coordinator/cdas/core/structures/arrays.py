"""Growable per-prompt numpy arrays: the memory store's shared core arrays and float arrays.

Arrays grow geometrically (by half), so appending m prompts costs O(m) amortized.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from cdas.core.space import Arrays, CoreRows, FloatArray, IntArray

A = TypeVar("A", bound=npt.NDArray[Any])


def grow_array(a: A, n: int, fill: float) -> A:
    """``a`` with room for at least n entries (grown by half, new slots = ``fill``)."""
    if n <= a.size:
        return a
    out = np.full(max(n, a.size + a.size // 2), fill, dtype=a.dtype)
    out[: a.size] = a
    return out  # type: ignore[return-value]


class NumpyCoreArrays:
    """D, t, last pass rate, last step and labels of every prompt, as numpy arrays.

    Memory: 8 (D) + 4 (t) + 8 (last pass rate) + 4 (last step) bytes per prompt, +8 with labels.
    """

    def __init__(self) -> None:
        self._d = np.zeros(0, dtype=np.float64)
        self._t = np.zeros(0, dtype=np.int32)
        self._s = np.zeros(0, dtype=np.float64)
        self._step = np.zeros(0, dtype=np.int32)
        self._labels: FloatArray | None = None

    def gather(self, idx: IntArray) -> CoreRows:
        return CoreRows(self._d[idx], self._t[idx], self._s[idx], self._step[idx].astype(np.int64))

    def scatter(self, idx: IntArray, rows: CoreRows) -> None:
        self._d[idx] = rows.d
        self._t[idx] = rows.t
        self._s[idx] = rows.last_pass_rate
        self._step[idx] = rows.last_step

    def labels(self, idx: IntArray) -> FloatArray | None:
        return None if self._labels is None else self._labels[idx]

    def gather_range(self, start: int, stop: int) -> tuple[CoreRows, FloatArray | None]:
        rows = CoreRows(
            self._d[start:stop].copy(),
            self._t[start:stop].copy(),
            self._s[start:stop].copy(),
            self._step[start:stop].astype(np.int64),
        )
        return rows, None if self._labels is None else self._labels[start:stop].copy()

    def append(self, n: int, m: int, labels: FloatArray | None) -> None:
        self._d = grow_array(self._d, n + m, 0.0)
        self._t = grow_array(self._t, n + m, 0)
        self._s = grow_array(self._s, n + m, np.nan)
        self._step = grow_array(self._step, n + m, -1)
        if labels is not None and self._labels is None and not np.isnan(labels).all():
            self._labels = np.full(self._d.size, np.nan)
        if self._labels is not None:
            grown = grow_array(self._labels, n + m, np.nan)
            grown[n : n + m] = np.nan if labels is None else labels
            self._labels = grown

    def dump(self, n: int) -> Arrays:
        out: Arrays = {
            "d": self._d[:n].copy(),
            "t": self._t[:n].copy(),
            "last_pass_rate": self._s[:n].copy(),
            "last_step": self._step[:n].astype(np.int64),
        }
        if self._labels is not None:
            out["labels"] = self._labels[:n].copy()
        return out

    def load(self, arrays: Arrays) -> None:
        self._d = np.asarray(arrays["d"], dtype=np.float64).copy()
        self._t = np.asarray(arrays["t"], dtype=np.int32).copy()
        self._s = np.asarray(arrays["last_pass_rate"], dtype=np.float64).copy()
        self._step = np.asarray(arrays["last_step"], dtype=np.int32).copy()
        labels = arrays.get("labels")
        self._labels = None if labels is None else np.asarray(labels, dtype=np.float64).copy()


class NumpyFloatArray:
    """One float per prompt (MoPPS's posteriors)."""

    def __init__(self) -> None:
        self._a = np.zeros(0, dtype=np.float64)
        self._n = 0

    def get(self, idx: IntArray) -> FloatArray:
        return self._a[idx]

    def set(self, idx: IntArray, values: FloatArray) -> None:
        self._a[idx] = values

    def append(self, values: FloatArray) -> None:
        self._a = grow_array(self._a, self._n + values.size, 0.0)
        self._a[self._n : self._n + values.size] = values
        self._n += values.size

    def dump(self) -> FloatArray:
        return self._a[: self._n].copy()
