"""The store protocol: where runs live, and one way to act on a run atomically.

Two implementations: ``MemoryStore`` (embedded) and ``RedisStore`` (shared). A store knows how to
hold a run's space and make one operation on it atomic; what an operation does is the engine's
(``cdas.core.engine.RunEngine``), and which operation a request is, the coordinator's. So every
call that acts on one existing run is one ``transact(run_id, Operation)``: the store opens the
run's space, runs ``operation.body`` on its engine, and either commits every change or, when
the body raises, none (the memory store by a lock, since the engine checks a whole request
before it changes anything; Redis by one commit script checking the run's version, retried
from the start when another writer got there first).

Only what is not "one existing run" has its own method: creating a run (``put_run``; the same
config and prompts again answer it with ``created=False``, another one under the same id is a
``ConflictError``), replacing one from a snapshot (``restore``), deleting one, listing the ids,
and ``ping``. The semantics of each operation (idempotent batches per (step, round), each (step,
prompt) applied at most once with the competence its batch was issued with, ...) are the
engine's, so both stores answer them alike by construction; the contract tests run on each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from cdas.core.config import PromptSpec, RunConfig
from cdas.core.views import RunInfo

if TYPE_CHECKING:
    from cdas.core.engine import RunEngine

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Operation(Generic[T]):
    """One call on one run: ``body`` runs on the run's engine, atomically.

    ``name`` names the call in errors (a run changed under it too often). ``step`` and
    ``prefetch`` are hints a store may use to read in its first round trip what the body will
    need: the step record of ``step``, the core records of the prompts at ``prefetch`` (row
    indexes; a guess, entries past the run's end are ignored). They never change the answer."""

    name: str
    body: Callable[[RunEngine], T]
    step: int | None = None
    prefetch: npt.NDArray[np.int64] | None = None


@runtime_checkable
class Store(Protocol):
    def put_run(self, run_id: str, config: RunConfig, prompts: PromptSpec) -> RunInfo: ...

    def transact(self, run_id: str, operation: Operation[T]) -> T:
        """Run ``operation`` on the run, atomically; ``RunNotFoundError`` if there is none."""
        ...

    def run_ids(self) -> list[str]:
        """The ids of the runs in the store, sorted."""
        ...

    def delete_run(self, run_id: str) -> None: ...

    def restore(self, run_id: str, data: bytes) -> RunInfo:
        """Create or replace ``run_id`` with a snapshot's state."""
        ...

    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` when the store cannot be reached."""
        ...
