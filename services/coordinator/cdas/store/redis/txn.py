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


class RemoteSlots:
    """Fixed-width slots in a Redis string, seen through this operation's overlay.

    The overlay holds every slot known to the operation (read from Redis, or written) as a sorted
    index array with a value array and a dirty mask, so reads and writes of a batch are a few
    numpy operations. Contiguous writes of 64 slots or more are kept as segments (appends of new
    prompts), and ``load`` replaces the whole content. Unwritten slots (past the end of the
    string) read as ``fill``; integer arrays with a nonzero fill store ``value - fill``, so zero
    bytes mean ``fill``.
    """

    def __init__(self, txn: Txn, key: str, dtype: Any, fill: Any = 0) -> None:
        self.txn = txn
        self.key = key
        self.dtype = np.dtype(dtype)
        self.width = self.dtype.itemsize
        self.fill = fill
        self._shift = fill if self.dtype.kind in "iu" else 0
        self._idx = np.zeros(0, dtype=np.int64)  # known slots, sorted
        self._val = np.zeros(0, dtype=self.dtype)
        self._dirty = np.zeros(0, dtype=np.bool_)
        self._segments: list[tuple[int, npt.NDArray[Any]]] = []  # contiguous writes, in order
        self._base: npt.NDArray[Any] | None = None  # the whole content, replaced by ``load``
        txn.register(self)

    @property
    def dirty(self) -> bool:
        return bool(self._dirty.any() or self._segments) or self._base is not None

    # ------------------------------------------------------------------ the overlay
    def _find(self, at: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        pos = np.searchsorted(self._idx, at)
        hit = pos < self._idx.size
        hit[hit] = self._idx[pos[hit]] == at[hit]
        return pos, hit

    def _merge(self, at: IntArray, values: npt.NDArray[Any], dirty: bool) -> None:
        """Record ``values`` for distinct slots ``at``: writes override, reads only fill gaps."""
        pos, hit = self._find(at)
        if dirty and hit.any():
            self._val[pos[hit]] = values[hit]
            self._dirty[pos[hit]] = True
        new = ~hit
        if new.any():
            order = np.argsort(at[new], kind="stable")
            add_at, add_val = at[new][order], values[new][order]
            where = np.searchsorted(self._idx, add_at)
            self._idx = np.insert(self._idx, where, add_at)
            self._val = np.insert(self._val, where, add_val)
            self._dirty = np.insert(self._dirty, where, dirty)

    def _local(self, at: IntArray) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
        """Values of slots the operation wrote in bulk (segments, a loaded base); and which."""
        out = np.zeros(at.size, dtype=self.dtype)
        found = np.zeros(at.size, dtype=np.bool_)
        if self._base is not None:
            inside = at < self._base.size
            out[inside] = self._base[at[inside]]
            out[~inside] = self.fill
            found[:] = True
        for start, values in self._segments:  # later segments win
            inside = (at >= start) & (at < start + values.size)
            out[inside] = values[at[inside] - start]
            found |= inside
        return out, found

    # ------------------------------------------------------------------ reads
    def fetch(self, at: IntArray) -> None:
        at = np.unique(at) if at.size > 1 else at
        _, hit = self._find(at)
        missing = at[~hit]
        if missing.size == 0:
            return
        values, found = self._local(missing)
        if found.any():
            self._merge(missing[found], values[found], dirty=False)
        if (~found).any():
            self.txn.want(self, missing[~found].tolist())

    def get(self, at: IntArray) -> npt.NDArray[Any]:
        pos, hit = self._find(at)
        if not hit.all():
            self.fetch(at[~hit])
            self.txn.flush()
            pos, hit = self._find(at)
        return self._val[pos]

    def absorb(self, slots: list[int], blob: bytes) -> None:
        """Values gathered from Redis for ``slots`` (the overlay keeps precedence)."""
        decoded = np.frombuffer(blob, dtype=self.dtype)
        if self._shift:
            decoded = decoded + self._shift
        self._merge(np.asarray(slots, dtype=np.int64), decoded, dirty=False)

    # ------------------------------------------------------------------ writes
    def set(self, at: IntArray, values: npt.NDArray[Any]) -> None:
        values = np.asarray(values, dtype=self.dtype)
        if at.size >= 64 and int(at[-1]) - int(at[0]) == at.size - 1 and (np.diff(at) == 1).all():
            start, stop = int(at[0]), int(at[-1]) + 1
            self._segments.append((start, values.copy()))
            keep = (self._idx < start) | (self._idx >= stop)
            self._idx, self._val, self._dirty = self._idx[keep], self._val[keep], self._dirty[keep]
            return
        self._merge(at.astype(np.int64), values, dirty=True)

    def load(self, values: npt.NDArray[Any]) -> None:
        self._base = np.asarray(values, dtype=self.dtype).copy()
        self._idx = np.zeros(0, dtype=np.int64)
        self._val = np.zeros(0, dtype=self.dtype)
        self._dirty = np.zeros(0, dtype=np.bool_)
        self._segments.clear()

    def dump(self, n: int) -> npt.NDArray[Any]:
        """Slots 0..n-1 (one GETRANGE of the whole string when nothing is known locally)."""
        return self.span(0, n)

    def span(self, start: int, stop: int) -> npt.NDArray[Any]:
        """Slots start..stop-1: one GETRANGE of just those bytes when the operation has written
        nothing (the overlay then holds only values read from Redis, which the range repeats),
        else through the overlay. O(stop - start), whatever the string's length."""
        if self._base is None and not self._segments and not self._dirty.any():
            count, w = stop - start, self.width
            self.txn.round_trips += 1
            raw = self.txn.client.getrange(self.key, start * w, stop * w - 1) if count else b""
            raw = raw + bytes(count * w - len(raw))
            out = np.frombuffer(raw, dtype=self.dtype).copy()
            return out + self._shift if self._shift else out
        return self.get(np.arange(start, stop, dtype=np.int64)).copy()

    def pending(self) -> tuple[IntArray, npt.NDArray[Any]]:
        """The slots this operation has written (outside segments and bases), and their values."""
        return self._idx[self._dirty], self._val[self._dirty]

    def _stored(self, values: npt.NDArray[Any]) -> bytes:
        data = values - self._shift if self._shift else values
        return np.ascontiguousarray(data, dtype=self.dtype).tobytes()

    def emit(self, txn: Txn) -> None:
        """Turn the overlay's writes into commit operations."""
        slots, values = self.pending()
        if self._base is not None:
            final = self._base
            top = max(
                [final.size]
                + [start + v.size for start, v in self._segments]
                + ([int(slots.max()) + 1] if slots.size else [])
            )
            if top > final.size:
                grown = np.full(top, self.fill, dtype=self.dtype)
                grown[: final.size] = final
                final = grown
            for start, segment in self._segments:
                final[start : start + segment.size] = segment
            final[slots] = values
            if final.size:
                txn.write("set", self.key, self._stored(final))
            else:
                txn.write("del", self.key)
            return
        for start, segment in self._segments:
            txn.write("setrange", self.key, start * self.width, self._stored(segment))
        if slots.size:
            txn.write("scatter", self.key, self.width, pack_i8(slots), self._stored(values))
