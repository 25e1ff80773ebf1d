"""``RedisStore``: every run's state in Redis (or Redis Cluster), shared by any number of
coordinator processes, durable as the server is, and answering exactly as ``MemoryStore`` does.

Each call is one optimistic transaction (``cdas.store.redis.txn``): read the run (``LOAD``, then a
few batched gathers), run the shared engine, and commit every write in one script that checks the
run's version. A concurrent writer makes the commit fail without writing anything; the call is
then retried from the start, with jittered backoff. Duplicates are recognized from the applied sets
stored with the run, so a retry after a crash is never applied twice.

A connection that fails is reported as ``StoreUnavailableError`` (REST: 503); redis-py reconnects
by itself on the next call.

A registration is one atomic script too: 10^6 prompts at once keep Redis busy for about two
seconds (``cdas bench redis``). A live deployment shared with running trainers registers large
prompt sets in chunks (``add_prompts``), 10^5 at a time, about a quarter of a second each.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import redis
from redis.cluster import RedisCluster

from cdas.core.config import PromptSpec, RunConfig, check_same_run
from cdas.core.engine import Restored, RunEngine
from cdas.core.errors import RunNotFoundError, StoreUnavailableError
from cdas.core.steps import RETAIN_STEPS
from cdas.core.views import RunInfo
from cdas.store.base import Operation
from cdas.store.redis import scripts
from cdas.store.redis.keys import META_PATTERN, RunKeys, run_id_of
from cdas.store.redis.space import CORE_RECORD, RedisSpace, RedisStepStore
from cdas.store.redis.txn import Txn, pack_i8

T = TypeVar("T")

MAX_ATTEMPTS = 200
"""Commits a call tries before giving up on a run written too often by others."""

_CONFLICT = object()
"""What a commit attempt answers when another writer changed the run first."""

_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError)


@contextmanager
def _reachable(what: str) -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailableError(
            f"Redis is unreachable during {what}: {type(exc).__name__}: {exc}"
        ) from exc


def _fields(flat: list[Any]) -> dict[bytes, Any]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class RedisStore:
    """Runs in Redis; see the module docstring. ``url``: ``redis://host:port/db`` (a single
    server) or ``redis+cluster://host:port`` (a Redis Cluster, any node as the entry point)."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        retain_steps: int = RETAIN_STEPS,
        client: Any = None,
        socket_timeout: float = 60.0,
    ) -> None:
        if client is None:
            options = {"socket_timeout": socket_timeout, "socket_connect_timeout": 5.0}
            if url.startswith("redis+cluster://"):
                client = RedisCluster.from_url(
                    "redis://" + url[len("redis+cluster://") :], **options
                )
            else:
                client = redis.Redis.from_url(url, **options)
        self.client = client
        self.retain_steps = retain_steps
        self.scripts = {
            "load": client.register_script(scripts.LOAD),
            "gather": client.register_script(scripts.GATHER),
            "nearest": client.register_script(scripts.NEAREST),
            "sides": client.register_script(scripts.SIDES),
            "descend": client.register_script(scripts.DESCEND),
            "commit": client.register_script(scripts.COMMIT),
        }
        self.last_round_trips = 0
        """Round trips of the latest call (a benchmark figure)."""

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ the transaction loop
    def _open(
        self, run_id: str, step: int | None = None, idx: np.ndarray | None = None
    ) -> tuple[Txn, RedisSpace | None, str]:
        """Read a run (one round trip): its space, or None when it does not exist."""
        keys = RunKeys(run_id)
        txn = Txn(self.client, self.scripts, keys.meta)
        answer = txn.call(
            "load",
            [keys.meta, keys.steps, keys.stats, keys.step(step or 0), keys.core],
            [
                "" if step is None else step,
                self.retain_steps,
                pack_i8(idx if idx is not None else []),
                CORE_RECORD.itemsize,
            ],
        )
        meta = _fields(answer[0])
        if not meta:
            return txn, None, ""
        record, stats, evictable, core_blob = answer[1], answer[2], answer[3], answer[4]
        cutoff = int(answer[5]) if answer[5] else None  # LOAD listed the steps below it
        steps = RedisStepStore(txn, keys, step, _fields(record), stats or None, evictable, cutoff)
        # normalized again: a run stored before a strategy gained a param gets its default
        config = RunConfig.make(**json.loads(meta[b"config"]))
        space = RedisSpace(
            txn, keys, config, meta[b"fingerprint"].decode(), json.loads(meta[b"state"]), steps
        )
        if idx is not None and len(idx):  # prefetched records: keep those of registered prompts
            known = idx < space.scalars.n
            records = np.frombuffer(core_blob, dtype=CORE_RECORD)
            if known.any():
                space.core.records.absorb(idx[known].tolist(), records[known].tobytes())
        return txn, space, meta[b"version"].decode()

    def _retrying(self, what: str, run_id: str, attempt: Callable[[], Any]) -> Any:
        """Call ``attempt`` (one read-compute-commit) until it does not answer ``_CONFLICT``."""
        with _reachable(what):
            for n in range(MAX_ATTEMPTS):
                result = attempt()
                if result is not _CONFLICT:
                    return result
                _backoff(n)
        raise StoreUnavailableError(
            f"run {run_id!r} changed under {what} {MAX_ATTEMPTS} times in a row; retry later"
        )

    def _commit(self, txn: Txn, version: str, result: T) -> T | object:
        """Commit ``txn``: ``result`` when it applied, ``_CONFLICT`` when the run moved on."""
        if txn.commit(version) < 0:
            return _CONFLICT
        self.last_round_trips = txn.round_trips
        return result

    def transact(self, run_id: str, operation: Operation[T]) -> T:
        """Run ``operation`` on the run's engine and commit its writes in one script that checks
        the run's version; on a conflict, everything again from the read (module docstring).
        The body's exception commits nothing. O(what the body reads and writes) per attempt."""

        def attempt() -> T | object:
            txn, space, version = self._open(run_id, operation.step, operation.prefetch)
            if space is None:
                raise RunNotFoundError(run_id)
            result = operation.body(RunEngine(space, self.retain_steps))
            if not space.changed:
                self.last_round_trips = txn.round_trips
                return result
            self._write_state(txn, space)
            return self._commit(txn, version, result)

        result: T = self._retrying(operation.name, run_id, attempt)
        return result

    @staticmethod
    def _write_state(txn: Txn, space: RedisSpace) -> None:
        txn.write(
            "hset",
            space.keys.meta,
            "state",
            json.dumps(space.state()),
            "max_step",
            space.scalars.max_step,
        )

    def _fresh(self, run_id: str, txn: Txn, config: RunConfig, fingerprint: str) -> RedisSpace:
        """An empty space for a run about to be created (or replaced) by this transaction."""
        keys = RunKeys(run_id)
        steps = RedisStepStore(txn, keys, None, {}, None, [])
        space = RedisSpace(txn, keys, config, fingerprint, {}, steps)
        txn.write(
            "hset",
            keys.meta,
            "config",
            json.dumps(config.to_dict()),
            "fingerprint",
            fingerprint,
            "uid",
            secrets.token_hex(8),
        )
        return space

    # ------------------------------------------------------------------ runs
    def put_run(self, run_id: str, config: RunConfig, prompts: PromptSpec) -> RunInfo:
        fingerprint = prompts.fingerprint()

        def attempt() -> RunInfo | object:
            txn, existing, _ = self._open(run_id)
            if existing is not None:
                check_same_run(run_id, existing.config, existing.fingerprint, config, fingerprint)
                return RunEngine(existing, self.retain_steps).info(created=False)
            space = self._fresh(run_id, txn, config, fingerprint)
            engine = RunEngine(space, self.retain_steps)
            engine.add_prompts(prompts)
            self._write_state(txn, space)
            return self._commit(txn, "", engine.info(created=True))

        info: RunInfo = self._retrying("put_run", run_id, attempt)
        return info

    def run_ids(self) -> list[str]:
        with _reachable("list_runs"):
            keys = {
                k.decode() if isinstance(k, bytes) else k
                for k in self.client.scan_iter(META_PATTERN)
            }
        return sorted(run_id_of(key) for key in keys)

    def delete_run(self, run_id: str) -> None:
        def attempt() -> object | None:
            txn, space, version = self._open(run_id)
            if space is None:
                raise RunNotFoundError(run_id)
            for key in self._run_keys(txn, space):
                txn.write("del", key)
            return self._commit(txn, version, None)

        self._retrying("delete_run", run_id, attempt)

    def _run_keys(self, txn: Txn, space: RedisSpace) -> list[str]:
        """Every key of an existing run, its retained steps' keys included."""
        txn.round_trips += 1
        steps = [int(s) for s in self.client.zrange(space.keys.steps, 0, -1)]
        return [*space.all_keys(), *(space.keys.step(s) for s in steps)]

    # ------------------------------------------------------------------ snapshots
    def restore(self, run_id: str, data: bytes) -> RunInfo:
        restored = Restored(data)

        def attempt() -> RunInfo | object:
            txn, existing, version = self._open(run_id)
            if existing is not None:
                for key in self._run_keys(txn, existing):
                    txn.write("del", key)
            space = self._fresh(run_id, txn, restored.config, restored.fingerprint)
            engine = RunEngine(space, self.retain_steps)
            engine.load(restored)
            self._write_state(txn, space)
            return self._commit(txn, version, engine.info())

        info: RunInfo = self._retrying("restore", run_id, attempt)
        return info

    def ping(self) -> None:
        with _reachable("ping"):
            self.client.ping()


def _backoff(attempt: int) -> None:
    """Jittered exponential backoff between commit attempts (at most ~50 ms)."""
    time.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 7))))
