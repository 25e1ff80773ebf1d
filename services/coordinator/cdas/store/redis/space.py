"""The Redis store's ``RunSpace``: one run's state in Redis, seen by one operation.

Built from the ``LOAD`` script's answer; structures read their slots through the operation's
``Txn`` and buffer their writes in it; ``commit`` writes the scalars back with everything else in
one atomic script. The engine and the strategies run on it unchanged, so answers are those of the
memory store, bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cdas.core.config import RunConfig
from cdas.core.ids import PromptIds, canonical_ints, check_new, implicit_prefix
from cdas.core.space import Arrays, CoreRows, FloatArray, IntArray, RunScalars
from cdas.core.steps import RoundRecord, StepRecord, StepStats
from cdas.core.structures.pool import UniformPool
from cdas.core.structures.sumtree import SumTree
from cdas.store.redis.keys import RunKeys
from cdas.store.redis.txn import RemoteSlots, Txn, pack_f8, pack_i8

CORE_RECORD = np.dtype([("d", "<f8"), ("t", "<i4"), ("s", "<f8"), ("step", "<i4")])
"""The 24-byte per-prompt record of the shared core arrays (steps are below 2**31)."""

MEMBER_WIDTH = 11
"""Ordered-index members: 7-byte big-endian tie key, then 4-byte big-endian prompt index."""


def members(z: npt.NDArray[np.complex128], idx: IntArray) -> bytes:
    """Index members of keys ``z`` (real D, imaginary tie key k * 2**-53) for prompts ``idx``."""
    key53 = np.rint(z.imag * 2.0**53).astype(">u8")
    out = np.empty((idx.size, MEMBER_WIDTH), dtype=np.uint8)
    out[:, :7] = key53.view(np.uint8).reshape(-1, 8)[:, 1:]
    out[:, 7:] = idx.astype(">u4").view(np.uint8).reshape(-1, 4)
    return out.tobytes()


class RedisOrderedIndex:
    """The ordered index as a sorted set: score D, member (tie key, prompt).

    Writes are buffered in the operation (``Txn``) and kept, as the arrays they came in, so
    that a selection after writes in the same operation (``advance``: the results, then the next
    batch) sees them: ``nearest`` then folds them into an overlay (each rewritten prompt's last
    key, or none when removed), reads each side of c without the rewritten prompts (``SIDES``)
    and merges in the overlay's entries, which gives exactly the entries of the index as it will
    be committed. An operation that only writes (a report) pays nothing for this."""

    def __init__(self, txn: Txn, key: str) -> None:
        self.txn, self.key = txn, key
        self._writes: list[tuple[IntArray, npt.NDArray[np.complex128] | None]] = []
        """(prompts, their new keys) per insert, (prompts, None) per removal, in order."""

    def insert(self, idx: IntArray, z: npt.NDArray[np.complex128]) -> None:
        if idx.size:  # in key order: consecutive inserts then walk mostly cached skiplist paths
            order = np.argsort(z, kind="stable")
            z, idx = z[order], idx[order]
            self.txn.write("zadd", self.key, pack_f8(z.real), members(z, idx), MEMBER_WIDTH)
            self._writes.append((idx, z))

    def update(
        self,
        remove_idx: IntArray,
        remove_z: npt.NDArray[np.complex128],
        insert_idx: IntArray,
        insert_z: npt.NDArray[np.complex128],
    ) -> None:
        if remove_idx.size:
            order = np.lexsort((remove_idx, remove_z.imag, remove_z.real))
            z, idx = remove_z[order], remove_idx[order]
            blob = members(z, idx)
            first, last = blob[:MEMBER_WIDTH], blob[-MEMBER_WIDTH:]
            self.txn.write("zrem", self.key, blob, MEMBER_WIDTH, first, last)
            self._writes.append((idx, None))
        self.insert(insert_idx, insert_z)

    def nearest(
        self, c: float, below: int, above: int, exclude: IntArray | None = None
    ) -> IntArray:
        """As ``OrderedIndex.nearest``: one ``NEAREST`` script on the committed index, or, after
        writes in this operation, one ``SIDES`` script and a merge with them."""
        if self._writes:
            return self._nearest_written(c, below, above, exclude)
        ex = pack_i8(exclude if exclude is not None else [])
        blob = self.txn.call("nearest", [self.key], [repr(float(c)), below, above, ex])
        chosen = np.frombuffer(blob, dtype=np.uint8).reshape(-1, MEMBER_WIDTH)
        return chosen[:, 7:].copy().view(">u4").ravel().astype(np.int64)

    def _nearest_written(
        self, c: float, below: int, above: int, exclude: IntArray | None
    ) -> IntArray:
        """The committed entries of untouched prompts nearest c on each side (``SIDES``),
        merged with the overlay's entries, then ``nearest``'s make-up rule. A merged side is
        exact as far as its committed part was read (``below`` or ``above`` entries, or all of
        that side): the make-up reads more of the other side in a second call when one side runs
        short. O(overlay + below + above) besides the scripts."""
        skip = np.zeros(0, dtype=np.int64) if exclude is None else np.unique(exclude)
        prompts, z, present = self._overlay()
        present &= ~np.isin(prompts, skip)
        z = z[present]
        mine = _Entries(z.real, np.rint(z.imag * 2.0**53).astype(np.uint64), prompts[present])
        ex = pack_i8(np.concatenate([prompts, skip]))
        want = below + above

        def read(lo_need: int, hi_need: int) -> tuple[_Entries, bool, _Entries, bool]:
            answer = self.txn.call("sides", [self.key], [repr(float(c)), lo_need, hi_need, ex])
            lo, hi = _entries(answer[0], answer[1]), _entries(answer[2], answer[3])
            return lo, len(lo) < lo_need, hi, len(hi) < hi_need

        lo_c, lo_done, hi_c, hi_done = read(below, above)
        lo = _merged(lo_c, mine.where(mine.d <= c), descending=True)
        hi = _merged(hi_c, mine.where(mine.d > c), descending=False)
        # a side that runs short is made up from the other (read further when it was cut)
        if lo_done and len(lo) < below and not hi_done and len(hi_c) < want - len(lo):
            hi_c, hi_done = read(0, want - len(lo))[2:]
            hi = _merged(hi_c, mine.where(mine.d > c), descending=False)
        if hi_done and len(hi) < above and not lo_done and len(lo_c) < want - len(hi):
            lo_c, lo_done = read(want - len(hi), 0)[:2]
            lo = _merged(lo_c, mine.where(mine.d <= c), descending=True)
        lo_n = lo.prompt[:below]
        hi_n = hi.prompt[: above + below - lo_n.size]
        if lo_n.size == below and lo_n.size + hi_n.size < want:
            lo_n = lo.prompt[: want - hi_n.size]
        return np.concatenate([lo_n, hi_n]).astype(np.int64)

    def _overlay(self) -> tuple[IntArray, npt.NDArray[np.complex128], npt.NDArray[np.bool_]]:
        """Every prompt this operation rewrote, its last key, and whether that was an insert
        (else a removal). O(writes)."""
        idx = np.concatenate([np.asarray(w[0], dtype=np.int64) for w in self._writes])
        z = np.concatenate(
            [np.zeros(w[0].size, np.complex128) if w[1] is None else w[1] for w in self._writes]
        )
        inserted = np.concatenate([np.full(w[0].size, w[1] is not None) for w in self._writes])
        _, first = np.unique(idx[::-1], return_index=True)  # the last write of each prompt
        last = idx.size - 1 - first
        return idx[last], z[last], inserted[last]


@dataclass(frozen=True, slots=True)
class _Entries:
    """Ordered-index entries as columns: D, tie key, prompt (the index orders by all three)."""

    d: npt.NDArray[np.float64]
    tie: npt.NDArray[np.uint64]
    prompt: IntArray

    def __len__(self) -> int:
        return int(self.prompt.size)

    def where(self, mask: npt.NDArray[np.bool_]) -> _Entries:
        return _Entries(self.d[mask], self.tie[mask], self.prompt[mask])


def _entries(blob: bytes, scores: bytes) -> _Entries:
    """``SIDES``'s members and scores as entries (scores are exact: Redis prints %.17g)."""
    rows = np.frombuffer(blob, dtype=np.uint8).reshape(-1, MEMBER_WIDTH)
    keys = np.zeros((rows.shape[0], 8), dtype=np.uint8)
    keys[:, 1:] = rows[:, :7]
    d = np.array(scores.split(), dtype=np.float64) if scores else np.zeros(0)
    prompts = rows[:, 7:].copy().view(">u4").ravel().astype(np.int64)
    return _Entries(d, keys.view(">u8").ravel().astype(np.uint64), prompts)


def _merged(a: _Entries, b: _Entries, descending: bool) -> _Entries:
    """``a`` and ``b`` in the index's order (D, then tie key, then prompt), nearest c first."""
    d = np.concatenate([a.d, b.d])
    tie = np.concatenate([a.tie, b.tie])
    prompt = np.concatenate([a.prompt, b.prompt])
    order = np.lexsort((prompt, tie, d))
    if descending:
        order = order[::-1]
    return _Entries(d[order], tie[order], prompt[order])


class RedisSumTree(SumTree):
    """The sum tree with its nodes in a Redis string; the descent runs in a read-only script."""

    def __init__(self, nodes: RemoteSlots, counters: tuple[int, int, int]) -> None:
        super().__init__(nodes, counters)
        self._remote = nodes

    def _descend(self, u: FloatArray) -> IntArray:
        if self._remote._base is not None or self._remote._segments:
            raise RuntimeError("the sum tree was sampled after being rebuilt in one operation")
        slots, values = self._remote.pending()
        _, cap, _ = self.counters
        blob = self._remote.txn.call(
            "descend",
            [self._remote.key],
            [cap.bit_length() - 1, cap, pack_f8(u), pack_i8(slots), pack_f8(values)],
        )
        return np.frombuffer(blob, dtype="<i8").astype(np.int64)


class RedisFloatArray:
    """One float per prompt in a Redis string."""

    def __init__(self, slots: RemoteSlots, n: int) -> None:
        self.slots, self.n = slots, n

    def get(self, idx: IntArray) -> FloatArray:
        return self.slots.get(idx).astype(np.float64)

    def set(self, idx: IntArray, values: FloatArray) -> None:
        self.slots.set(idx, values)

    def append(self, values: FloatArray) -> None:
        self.slots.set(np.arange(self.n, self.n + values.size, dtype=np.int64), values)
        self.n += values.size

    def dump(self) -> FloatArray:
        return self.slots.dump(self.n).astype(np.float64)


class RedisCoreArrays:
    """The shared per-prompt arrays as 28-byte records in one string (labels in another)."""

    def __init__(self, txn: Txn, keys: RunKeys, has_labels: bool) -> None:
        self.records = RemoteSlots(txn, keys.core, CORE_RECORD)
        self.label_slots = RemoteSlots(txn, keys.labels, "<f8")
        self.has_labels = has_labels

    def gather(self, idx: IntArray) -> CoreRows:
        rows = self.records.get(idx)
        return CoreRows(
            rows["d"].astype(np.float64),
            rows["t"].astype(np.int32),
            rows["s"].astype(np.float64),
            rows["step"].astype(np.int64),
        )

    def scatter(self, idx: IntArray, rows: CoreRows) -> None:
        out = np.empty(idx.size, dtype=CORE_RECORD)
        out["d"], out["t"], out["s"], out["step"] = (
            rows.d,
            rows.t,
            rows.last_pass_rate,
            rows.last_step,
        )
        self.records.set(idx, out)

    def labels(self, idx: IntArray) -> FloatArray | None:
        return self.label_slots.get(idx).astype(np.float64) if self.has_labels else None

    def gather_range(self, start: int, stop: int) -> tuple[CoreRows, FloatArray | None]:
        rows = self.records.span(start, stop)  # one GETRANGE of 24 bytes a prompt
        labels = self.label_slots.span(start, stop) if self.has_labels else None
        return (
            CoreRows(
                rows["d"].astype(np.float64),
                rows["t"].astype(np.int32),
                rows["s"].astype(np.float64),
                rows["step"].astype(np.int64),
            ),
            None if labels is None else labels.astype(np.float64),
        )

    def append(self, n: int, m: int, labels: FloatArray | None) -> None:
        fresh = np.zeros(m, dtype=CORE_RECORD)
        fresh["s"], fresh["step"] = np.nan, -1
        self.records.set(np.arange(n, n + m, dtype=np.int64), fresh)
        if labels is not None and not self.has_labels and not np.isnan(labels).all():
            self.has_labels = True
            self.label_slots.set(np.arange(n, dtype=np.int64), np.full(n, np.nan))
        if self.has_labels:
            values = np.full(m, np.nan) if labels is None else labels
            self.label_slots.set(np.arange(n, n + m, dtype=np.int64), values)

    def dump(self, n: int) -> Arrays:
        rows = self.records.dump(n)
        out: Arrays = {
            "d": rows["d"].astype(np.float64),
            "t": rows["t"].astype(np.int32),
            "last_pass_rate": rows["s"].astype(np.float64),
            "last_step": rows["step"].astype(np.int64),
        }
        if self.has_labels:
            out["labels"] = self.label_slots.dump(n).astype(np.float64)
        return out

    def load(self, arrays: Arrays) -> None:
        rows = np.zeros(np.asarray(arrays["d"]).size, dtype=CORE_RECORD)
        rows["d"], rows["t"] = arrays["d"], arrays["t"]
        rows["s"], rows["step"] = arrays["last_pass_rate"], arrays["last_step"]
        self.records.load(rows)
        self.has_labels = "labels" in arrays
        if self.has_labels:
            self.label_slots.load(np.asarray(arrays["labels"], dtype=np.float64))


class RedisIdTable:
    """Prompt ids: the implicit "0".."k-1" range as a count, explicit ids in two hashes."""

    def __init__(self, txn: Txn, keys: RunKeys, implicit: int, explicit: int) -> None:
        self.txn, self.keys = txn, keys
        self.implicit, self._explicit = implicit, explicit
        self._new: dict[str, int] = {}  # explicit ids added by this operation

    @property
    def explicit(self) -> int:
        return self._explicit

    def __len__(self) -> int:
        return self.implicit + self._explicit

    def check_new(self, ids: Sequence[str], field: str = "ids") -> None:
        check_new(self.lookup, ids, field)

    def add(self, ids: Sequence[str]) -> None:
        start = 0
        if self._explicit == 0:
            start = implicit_prefix(ids, self.implicit)
            self.implicit += start
        rest = ids[start:]
        if not rest:
            return
        base = self.implicit + self._explicit
        fields: list[Any] = []
        names: list[Any] = []
        for k, prompt_id in enumerate(rest):
            fields += [prompt_id, base + k]
            names += [base + k, prompt_id]
            self._new[prompt_id] = base + k
        self.txn.write("hset", self.keys.ids, *fields)
        self.txn.write("hset", self.keys.names, *names)
        self._explicit += len(rest)

    def add_count(self, count: int) -> None:
        if self._explicit:
            raise ValueError("implicit ids cannot follow explicit ones; register them by name")
        self.implicit += count

    def lookup(self, ids: Sequence[str], canonical: IntArray | None = None) -> IntArray:
        out = canonical_ints(ids) if canonical is None else canonical.copy()
        out[out >= self.implicit] = -1
        if self._explicit == 0:
            return out
        todo = list(np.flatnonzero(out < 0).tolist())
        remote = [k for k in todo if ids[k] not in self._new]
        for k in todo:
            if ids[k] in self._new:
                out[k] = self._new[ids[k]]
        if remote and self._explicit > len(self._new):
            self.txn.round_trips += 1
            found = self.txn.client.hmget(self.keys.ids, [ids[k] for k in remote])
            for k, value in zip(remote, found, strict=True):
                if value is not None:
                    out[k] = int(value)
        return out

    def ids(self, idx: npt.NDArray[np.integer[Any]]) -> list[str]:
        values = idx.tolist()
        k = self.implicit
        if not values or int(idx.max()) < k:
            return list(map(str, values))
        by_index = {v: name for name, v in self._new.items()}
        remote = sorted({i for i in values if i >= k and i not in by_index})
        if remote:
            self.txn.round_trips += 1
            for i, name in zip(remote, self.txn.client.hmget(self.keys.names, remote), strict=True):
                by_index[i] = name.decode("utf-8", "surrogatepass")
        return [str(i) if i < k else by_index[i] for i in values]

    def to_arrays(self) -> tuple[int, npt.NDArray[np.uint8], IntArray]:
        table = PromptIds()
        if self._explicit:
            self.txn.round_trips += 1
            raw = self.txn.client.hgetall(self.keys.names)
            names = {int(i): v.decode("utf-8", "surrogatepass") for i, v in raw.items()}
            names.update({v: name for name, v in self._new.items()})
            table.add_explicit([names[self.implicit + j] for j in range(self._explicit)])
        _, buf, off = table.to_arrays()
        return self.implicit, buf, off

    def load(self, other: PromptIds) -> None:
        self.implicit = other.implicit
        self._explicit = 0
        self._new.clear()
        _, buf, off = other.to_arrays()
        names = PromptIds.from_arrays(0, buf, off)
        if len(names):
            self.add(names.ids(np.arange(len(names))))


class RedisStepStore:
    """Step records (a hash per retained step, their steps in a sorted set) and statistics.

    ``LOAD`` reads one step's record and statistics with the run (the step the operation names);
    any other step an operation touches (``advance``'s next step, a group commit's reports at
    several steps) is read on first use, one round trip each. What an operation writes is what
    it reads back later in the same operation (a group commit applies many reports in one). The
    commit's version check covers every read, the lazy ones included."""

    def __init__(
        self,
        txn: Txn,
        keys: RunKeys,
        step: int | None,
        record: dict[bytes, bytes],
        stats: bytes | None,
        evictable: list[bytes],
        cutoff: int | None = None,
    ) -> None:
        self.txn, self.keys = txn, keys
        self._records: dict[int, StepRecord | None] = {}
        self._stats: dict[int, StepStats | None] = {}
        if step is not None:
            self._records[step] = decode_record(record) if record else None
            self._stats[step] = StepStats.from_list(json.loads(stats)) if stats else None
        self._evictable = {int(s) for s in evictable}
        """Retained steps below ``_cutoff``, read by ``LOAD``."""
        self._cutoff = cutoff

    def _load(self, step: int) -> None:
        self.txn.round_trips += 1
        pipe = self.txn.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.step(step))
        pipe.hget(self.keys.stats, step)
        raw, stats = pipe.execute()
        self._records[step] = decode_record(raw) if raw else None
        self._stats[step] = StepStats.from_list(json.loads(stats)) if stats else None

    def record(self, step: int) -> StepRecord | None:
        if step not in self._records:
            self._load(step)
        return self._records[step]

    def put_record(self, step: int, record: StepRecord) -> None:
        fields: list[Any] = [
            "rounds",
            json.dumps([issued.competence for issued in record.rounds]),
            "applied",
            np.ascontiguousarray(record.applied, dtype="<i4").tobytes(),
        ]
        for r, issued in enumerate(record.rounds):
            fields += [f"r{r}", np.ascontiguousarray(issued.ids, dtype="<i4").tobytes()]
        self.txn.write("hset", self.keys.step(step), *fields)
        self.txn.write("zaddone", self.keys.steps, step, step)
        self._records[step] = record

    def evict_below(self, step: int) -> None:
        if self._cutoff is None or step > self._cutoff:  # past what LOAD read: read the rest
            self.txn.round_trips += 1
            older = self.txn.client.zrangebyscore(self.keys.steps, "-inf", f"({step}")
            self._evictable |= {int(s) for s in older}
            self._cutoff = step
        for old in sorted(s for s in self._evictable if s < step):
            self.txn.write("del", self.keys.step(old))
            self.txn.write("zremone", self.keys.steps, old)
            self._evictable.discard(old)
            self._records[old] = None  # the statistics stay

    def records(self) -> dict[int, StepRecord]:
        self.txn.round_trips += 1
        steps = [int(s) for s in self.txn.client.zrange(self.keys.steps, 0, -1)]
        out = {}
        for step in steps:
            self.txn.round_trips += 1
            raw = self.txn.client.hgetall(self.keys.step(step))
            if raw:
                out[step] = decode_record(raw)
        return out

    def stats(self, step: int) -> StepStats | None:
        if step not in self._stats:
            self._load(step)
        return self._stats[step]

    def put_stats(self, stats: StepStats) -> None:
        self.txn.write("hset", self.keys.stats, stats.step, json.dumps(stats.to_list()))
        self._stats[stats.step] = stats

    def all_stats(self) -> list[StepStats]:
        self.txn.round_trips += 1
        raw = self.txn.client.hgetall(self.keys.stats)
        rows = [StepStats.from_list(json.loads(v)) for v in raw.values()]
        return sorted(rows, key=lambda s: s.step)


def decode_record(raw: dict[bytes, bytes]) -> StepRecord:
    record = StepRecord()
    for r, competence in enumerate(json.loads(raw[b"rounds"])):
        ids = np.frombuffer(raw[f"r{r}".encode()], dtype="<i4").astype(np.int32)
        record.rounds.append(RoundRecord(ids, float(competence)))
    record.applied = np.frombuffer(raw[b"applied"], dtype="<i4").astype(np.int32)
    return record


class RedisSpace:
    """A run's state in Redis for one operation; see the module docstring."""

    def __init__(
        self,
        txn: Txn,
        keys: RunKeys,
        config: RunConfig,
        fingerprint: str,
        state: dict[str, Any],
        steps: RedisStepStore,
    ) -> None:
        self.txn, self.keys = txn, keys
        self.run_id = keys.run_id
        self.config = config
        self.fingerprint = fingerprint
        self.scalars = scalars_from(state.get("scalars", {}))
        self.ids = RedisIdTable(txn, keys, *state.get("ids", (0, 0)))
        self.core = RedisCoreArrays(txn, keys, bool(state.get("labels", False)))
        self.steps = steps
        self._pool_state: dict[str, list[int]] = dict(state.get("pools", {}))
        self._tree_state: dict[str, list[int]] = dict(state.get("trees", {}))
        self._float_state: dict[str, int] = dict(state.get("floats", {}))
        self._indexes: list[str] = list(state.get("indexes", []))
        self._pools: dict[str, UniformPool] = {}
        self._trees: dict[str, RedisSumTree] = {}
        self._floats: dict[str, RedisFloatArray] = {}
        self.loaded_state = self.state()

    @property
    def changed(self) -> bool:
        """Whether this operation wrote anything, its scalars included."""
        return self.txn.dirty or self.state() != self.loaded_state

    # ------------------------------------------------------------------ structures
    def ordered_index(self, name: str) -> RedisOrderedIndex:
        if name not in self._indexes:
            self._indexes.append(name)
        return RedisOrderedIndex(self.txn, self.keys.index(name))

    def pool(self, name: str) -> UniformPool:
        if name not in self._pools:
            counters = self._pool_state.get(name, [0, 0, 0])
            self._pools[name] = UniformPool(
                RemoteSlots(self.txn, self.keys.pool_items(name), "<i4"),
                RemoteSlots(self.txn, self.keys.pool_pos(name), "<i4", fill=-1),
                (counters[0], counters[1], counters[2]),
            )
        return self._pools[name]

    def pool_names(self, prefix: str) -> list[str]:
        return sorted(n for n in {*self._pool_state, *self._pools} if n.startswith(prefix))

    def sum_tree(self, name: str) -> RedisSumTree:
        if name not in self._trees:
            counters = self._tree_state.get(name, [0, 1, 0])
            nodes = RemoteSlots(self.txn, self.keys.tree(name), "<f8")
            self._trees[name] = RedisSumTree(nodes, (counters[0], counters[1], counters[2]))
        return self._trees[name]

    def float_array(self, name: str) -> RedisFloatArray:
        if name not in self._floats:
            slots = RemoteSlots(self.txn, self.keys.floats(name), "<f8")
            self._floats[name] = RedisFloatArray(slots, self._float_state.get(name, 0))
        return self._floats[name]

    # ------------------------------------------------------------------ commit
    def state(self) -> dict[str, Any]:
        """The run's scalar state, as stored in the meta hash."""
        pools = dict(self._pool_state)
        pools.update({name: list(pool.counters) for name, pool in self._pools.items()})
        trees = dict(self._tree_state)
        trees.update({name: list(tree.counters) for name, tree in self._trees.items()})
        floats = dict(self._float_state)
        floats.update({name: array.n for name, array in self._floats.items()})
        return {
            "scalars": scalars_to(self.scalars),
            "ids": [self.ids.implicit, self.ids.explicit],
            "labels": self.core.has_labels,
            "pools": pools,
            "trees": trees,
            "floats": floats,
            "indexes": self._indexes,
        }

    def all_keys(self) -> list[str]:
        """Every key this run may have (for a delete or a replacing restore)."""
        keys = self.keys
        out = keys.fixed()
        out += [keys.index(name) for name in self._indexes]
        for name in {*self._pool_state, *self._pools}:
            out += [keys.pool_items(name), keys.pool_pos(name)]
        out += [keys.tree(name) for name in {*self._tree_state, *self._trees}]
        out += [keys.floats(name) for name in {*self._float_state, *self._floats}]
        return out


def scalars_to(s: RunScalars) -> dict[str, Any]:
    return {
        "n": s.n,
        "sum_fixed": str(s.sum_fixed),  # may exceed 2**63: kept exact as text
        "seen": s.seen,
        "max_step": s.max_step,
        "results": s.results,
        "duplicates": s.duplicates,
        "rollouts": s.rollouts,
        "batches": s.batches,
        "hist": s.hist,
    }


def scalars_from(raw: dict[str, Any]) -> RunScalars:
    if not raw:
        return RunScalars()
    return RunScalars(
        n=int(raw["n"]),
        sum_fixed=int(raw["sum_fixed"]),
        seen=int(raw["seen"]),
        max_step=int(raw["max_step"]),
        results=int(raw["results"]),
        duplicates=int(raw["duplicates"]),
        rollouts=int(raw["rollouts"]),
        batches=int(raw["batches"]),
        hist=[int(x) for x in raw["hist"]],
    )
