"""Integer and float slot arrays that structures keep their state in, wherever it is stored.

Structure algorithms (the uniform pool, the sum tree) are written once against these protocols:
``get(at)`` reads slots, ``set(at, values)`` writes them, and ``fetch(at)`` announces slots the
algorithm is about to read. The memory store backs them with numpy arrays (``fetch`` does nothing);
the Redis store backs them with binary strings and serves every announced slot of every array in
one round trip at the next ``get``. Unwritten slots read as the array's ``fill``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


class Slots(Protocol):
    def fetch(self, at: IntArray) -> None: ...

    def get(self, at: IntArray) -> npt.NDArray[Any]: ...

    def set(self, at: IntArray, values: npt.NDArray[Any]) -> None: ...

    def dump(self, n: int) -> npt.NDArray[Any]:
        """Slots 0..n-1."""
        ...

    def load(self, values: npt.NDArray[Any]) -> None:
        """Replace the content by ``values`` (slots beyond read as ``fill``)."""
        ...


class NumpySlots:
    """Slots in a growable numpy array (grown by half; reads past the end give ``fill``)."""

    def __init__(self, dtype: type[np.generic], fill: float = 0) -> None:
        self._a = np.zeros(0, dtype=dtype)
        self._fill = fill

    def fetch(self, at: IntArray) -> None:
        """Nothing to prepare in memory."""

    def get(self, at: IntArray) -> npt.NDArray[Any]:
        if at.size and int(at.max()) >= self._a.size:
            inside = at < self._a.size
            out = np.full(at.size, self._fill, dtype=self._a.dtype)
            out[inside] = self._a[at[inside]]
            return out
        return self._a[at]

    def set(self, at: IntArray, values: npt.NDArray[Any]) -> None:
        if at.size and int(at.max()) >= self._a.size:
            need = int(at.max()) + 1
            grown = np.full(max(need, self._a.size + self._a.size // 2), self._fill, self._a.dtype)
            grown[: self._a.size] = self._a
            self._a = grown
        self._a[at] = values

    def dump(self, n: int) -> npt.NDArray[Any]:
        return self.get(np.arange(n, dtype=np.int64)).copy()

    def load(self, values: npt.NDArray[Any]) -> None:
        self._a = np.asarray(values, dtype=self._a.dtype).copy()
