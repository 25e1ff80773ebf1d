"""One operation's view of a run in Redis: batched reads, buffered writes, one atomic commit.

An operation reads what it needs (the ``LOAD`` script first, then slots of binary-string arrays
gathered in batches), computes with the same Python code as the memory store, and buffers every
write. ``commit`` hands all writes to the ``COMMIT`` script, which applies them only if the run is
still at the version the operation read (optimistic concurrency); otherwise nothing is written and
the store retries the whole operation. A coordinator that dies before the commit leaves no trace.

``RemoteSlots`` is an array of fixed-width slots in a Redis string, with an overlay of the values
read and written during the operation. ``fetch`` announces slots; the next ``get`` that needs a
slot not yet known gathers every announced slot of every array in one round trip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def pack_i8(values: Any) -> bytes:
    return np.ascontiguousarray(values, dtype="<i8").tobytes()


def pack_f8(values: Any) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


class Txn:
    """Reads and writes of one operation on one run (see the module docstring)."""

    def __init__(self, client: Any, scripts: dict[str, Any], meta_key: str) -> None:
        self.client = client
        self.scripts = scripts
        self.meta_key = meta_key
        self.round_trips = 0
        self._arrays: list[RemoteSlots] = []
        self._pending: dict[int, tuple[RemoteSlots, set[int]]] = {}
        self._ops: list[tuple[str, str, list[Any]]] = []

    # ------------------------------------------------------------------ reads
    def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a read-only script (one round trip)."""
        self.round_trips += 1
        return self.scripts[name](keys=keys, args=args)

    def want(self, array: RemoteSlots, slots: list[int]) -> None:
        entry = self._pending.setdefault(id(array), (array, set()))
        entry[1].update(slots)

    def flush(self) -> None:
        """Gather every announced slot of every array in one round trip."""
        if not self._pending:
            return
        entries = [(array, sorted(slots)) for array, slots in self._pending.values() if slots]
        self._pending.clear()
        if not entries:
            return
        args: list[Any] = []
        for array, slots in entries:
            args += [array.width, pack_i8(slots)]
        self.round_trips += 1
        blobs = self.scripts["gather"](keys=[array.key for array, _ in entries], args=args)
        for (array, slots), blob in zip(entries, blobs, strict=True):
            array.absorb(slots, blob)

    # ------------------------------------------------------------------ writes
    def register(self, array: RemoteSlots) -> None:
        self._arrays.append(array)

    def write(self, op: str, key: str, *args: Any) -> None:
        self._ops.append((op, key, list(args)))

    @property
    def dirty(self) -> bool:
        return bool(self._ops) or any(array.dirty for array in self._arrays)

    def commit(self, expected_version: str) -> int:
        """Apply every buffered write atomically if the run is at ``expected_version`` ('' = the
        run must not exist). Returns the new version, 0 after a delete, -1 on a conflict."""
        for array in self._arrays:
            array.emit(self)
        keys = [self.meta_key]
        position = {self.meta_key: 1}
        argv: list[Any] = [expected_version]
        for op, key, args in self._ops:
            if key not in position:
                keys.append(key)
                position[key] = len(keys)
            argv += [op, position[key], len(args), *args]
        self.round_trips += 1
        return int(self.scripts["commit"](keys=keys, args=argv))


_MISSING = object()


class RemoteSlots:
    """Fixed-width slots in a Redis string, seen through this operation's overlay.

    Unwritten slots (past the end of the string) read as ``fill``; integer arrays with a nonzero
    fill store ``value - fill`` so that zero bytes mean ``fill``.
    """

    def __init__(self, txn: Txn, key: str, dtype: Any, fill: Any = 0) -> None:
        self.txn = txn
        self.key = key
        self.dtype = np.dtype(dtype)
        self.width = self.dtype.itemsize
        self.fill = fill
        self._shift = fill if self.dtype.kind in "iu" else 0
        self._values: dict[int, Any] = {}  # every slot known: read, or written as a point
        self._dirty: set[int] = set()  # slots written as points
        self._segments: list[tuple[int, npt.NDArray[Any]]] = []  # contiguous writes, in order
        self._base: npt.NDArray[Any] | None = None  # the whole content, replaced by ``load``
        txn.register(self)

    @property
    def dirty(self) -> bool:
        return bool(self._dirty or self._segments) or self._base is not None

    # ------------------------------------------------------------------ reads
    def _local(self, i: int) -> Any:
        for start, values in reversed(self._segments):
            if start <= i < start + values.size:
                return values[i - start]
        if self._base is not None:
            return self._base[i] if i < self._base.size else self.fill
        return _MISSING

    def fetch(self, at: IntArray) -> None:
        values = self._values
        need = [i for i in at.tolist() if i not in values]
        if not need:
            return
        unknown = []
        for i in need:
            local = self._local(i)
            if local is _MISSING:
                unknown.append(i)
            else:
                values[i] = local
        if unknown:
            self.txn.want(self, unknown)

    def get(self, at: IntArray) -> npt.NDArray[Any]:
        values = self._values
        slots = at.tolist()
        if any(i not in values for i in slots):
            self.fetch(at)
            self.txn.flush()
        if self.dtype.names:
            return np.array([values[i] for i in slots], dtype=self.dtype)
        return np.fromiter((values[i] for i in slots), dtype=self.dtype, count=len(slots))

    def absorb(self, slots: list[int], blob: bytes) -> None:
        """Values gathered from Redis for ``slots`` (the overlay keeps precedence)."""
        decoded = np.frombuffer(blob, dtype=self.dtype)
        if self._shift:
            decoded = decoded + self._shift
        values = self._values
        for i, value in zip(
            slots, decoded.tolist() if not self.dtype.names else decoded, strict=True
        ):
            values.setdefault(i, value)

    # ------------------------------------------------------------------ writes
    def set(self, at: IntArray, values: npt.NDArray[Any]) -> None:
        values = np.asarray(values, dtype=self.dtype)
        if at.size >= 64 and int(at[-1]) - int(at[0]) == at.size - 1 and (np.diff(at) == 1).all():
            start, stop = int(at[0]), int(at[-1]) + 1
            self._segments.append((start, values.copy()))
            for i in [i for i in self._values if start <= i < stop]:
                del self._values[i]
                self._dirty.discard(i)
            return
        slots = at.tolist()
        items = values.tolist() if not self.dtype.names else list(values)
        self._values.update(zip(slots, items, strict=True))
        self._dirty.update(slots)

    def load(self, values: npt.NDArray[Any]) -> None:
        self._base = np.asarray(values, dtype=self.dtype).copy()
        self._values.clear()
        self._dirty.clear()
        self._segments.clear()

    def dump(self, n: int) -> npt.NDArray[Any]:
        """Slots 0..n-1 (one GET of the whole string when nothing is known locally)."""
        if self._base is None and not self._segments and not self._dirty:
            self.txn.round_trips += 1
            raw = self.txn.client.getrange(self.key, 0, n * self.width - 1) if n else b""
            raw = raw + bytes(n * self.width - len(raw))
            out = np.frombuffer(raw, dtype=self.dtype).copy()
            return out + self._shift if self._shift else out
        return self.get(np.arange(n, dtype=np.int64)).copy()

    def pending(self) -> tuple[IntArray, npt.NDArray[Any]]:
        """The slots this operation has written as points, and their values."""
        slots = sorted(self._dirty)
        return np.asarray(slots, dtype=np.int64), np.array(
            [self._values[i] for i in slots], dtype=self.dtype
        )

    def _stored(self, values: npt.NDArray[Any]) -> bytes:
        data = values - self._shift if self._shift else values
        return np.ascontiguousarray(data, dtype=self.dtype).tobytes()

    def emit(self, txn: Txn) -> None:
        """Turn the overlay's writes into commit operations."""
        if self._base is not None:
            final = self._base
            for start, values in self._segments:
                if start + values.size > final.size:
                    grown = np.full(start + values.size, self.fill, dtype=self.dtype)
                    grown[: final.size] = final
                    final = grown
                final[start : start + values.size] = values
            if self._dirty:
                slots, values = self.pending()
                if slots.size and int(slots.max()) >= final.size:
                    grown = np.full(int(slots.max()) + 1, self.fill, dtype=self.dtype)
                    grown[: final.size] = final
                    final = grown
                final[slots] = values
            txn.write("set", self.key, self._stored(final))
            return
        for start, values in self._segments:
            txn.write("setrange", self.key, start * self.width, self._stored(values))
        if self._dirty:
            slots, values = self.pending()
            txn.write("scatter", self.key, self.width, pack_i8(slots), self._stored(values))
