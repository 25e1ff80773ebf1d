"""The embedded store: every run in this process's memory, no server needed.

Runs are independent; each has its own lock, so calls on different runs proceed in parallel and
calls on one run are serialized (each call is atomic). ``save``/``load`` write and read all runs as
one file of snapshots (atomically: a temporary file renamed over the old one), so a single-machine
user can keep the state across restarts.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from cdas.core.config import PromptSpec, RunConfig, check_same_run
from cdas.core.engine import Restored, RunEngine
from cdas.core.errors import InvalidArgumentError, RunNotFoundError
from cdas.core.steps import RETAIN_STEPS
from cdas.core.views import RunInfo
from cdas.store.base import Operation
from cdas.store.memory_space import MemorySpace

T = TypeVar("T")


class MemoryRun:
    """A run in memory: its space, the engine over it, and the lock serializing its calls."""

    def __init__(self, space: MemorySpace, retain_steps: int) -> None:
        self.space = space
        self.engine = RunEngine(space, retain_steps)
        self.lock = threading.RLock()


class MemoryStore:
    """All runs in process memory; see the module docstring."""

    def __init__(self, retain_steps: int = RETAIN_STEPS) -> None:
        if retain_steps < 1:
            raise InvalidArgumentError(
                f"retain_steps {retain_steps} is below 1", field="retain_steps", value=retain_steps
            )
        self.retain_steps = retain_steps
        self._runs: dict[str, MemoryRun] = {}
        self._lock = threading.Lock()

    @contextmanager
    def _run(self, run_id: str) -> Iterator[RunEngine]:
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        with run.lock:
            yield run.engine

    def _new(self, run_id: str, config: RunConfig, fingerprint: str) -> MemoryRun:
        return MemoryRun(MemorySpace(run_id, config, fingerprint), self.retain_steps)

    # ------------------------------------------------------------------ runs
    def put_run(self, run_id: str, config: RunConfig, prompts: PromptSpec) -> RunInfo:
        fingerprint = prompts.fingerprint()
        with self._lock:
            existing = self._runs.get(run_id)
            if existing is None:
                run = self._new(run_id, config, fingerprint)
                run.engine.add_prompts(prompts)  # raises before the run is stored
                self._runs[run_id] = run
                return run.engine.info(created=True)
        with existing.lock:
            check_same_run(
                run_id, existing.space.config, existing.space.fingerprint, config, fingerprint
            )
            return existing.engine.info(created=False)

    def transact(self, run_id: str, operation: Operation[T]) -> T:
        """Run ``operation`` under the run's lock: atomic, since the engine checks a whole
        request before it changes anything."""
        with self._run(run_id) as engine:
            return operation.body(engine)

    def run_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    def delete_run(self, run_id: str) -> None:
        with self._lock:
            if self._runs.pop(run_id, None) is None:
                raise RunNotFoundError(run_id)

    # ------------------------------------------------------------------ snapshots
    def restore(self, run_id: str, data: bytes) -> RunInfo:
        restored = Restored(data)
        run = self._new(run_id, restored.config, restored.fingerprint)
        run.engine.load(restored)
        with self._lock:
            self._runs[run_id] = run
        return run.engine.info()

    def ping(self) -> None:
        """The embedded store is always reachable."""

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write every run to ``path`` atomically (zip of snapshots, one member per run)."""
        with self._lock:
            run_ids = sorted(self._runs)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.name, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as raw:
                with zipfile.ZipFile(raw, "w") as archive:
                    for run_id in run_ids:
                        try:
                            data = self.transact(run_id, Operation("save", RunEngine.snapshot))
                            archive.writestr(f"{run_id}.snapshot", data)
                        except RunNotFoundError:
                            continue  # deleted meanwhile
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str], retain_steps: int = RETAIN_STEPS) -> MemoryStore:
        """A store holding the runs ``save`` wrote to ``path`` (empty if the file is missing)."""
        store = cls(retain_steps)
        target = Path(path)
        if not target.exists():
            return store
        with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as archive:
            for name in archive.namelist():
                run_id = name.removesuffix(".snapshot")
                store.restore(run_id, archive.read(name))
        return store
