"""The coordinator: the one object every front door (library, REST, gRPC) calls.

It validates and normalizes each request (ids, steps, sizes, strategy and params, prompt specs),
then hands it to the store, which applies it atomically. It holds no run state itself, so any
number of coordinators may share one store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from cdas.core.config import (
    DEFAULT_MAX_PROMPTS,
    MAX_PROMPTS,
    PromptSpec,
    RunConfig,
    check_prompt_count,
)
from cdas.core.errors import InvalidArgumentError
from cdas.core.results import Result
from cdas.core.validate import check_int, check_prompt_id, check_run_id, check_step, describe
from cdas.core.views import Batch, PromptInfo, ReportOutcome, RunInfo, RunState
from cdas.store.base import Store

MAX_BATCH = 1 << 24
"""Largest batch one call may ask for."""

MAX_FRONTIER = 1000
"""Most prompts ``get_state`` lists nearest the competence."""


def check_batch_request(run_id: str, step: int, size: int, round: int) -> None:
    """``next_batch``'s argument checks (the gRPC client runs them too, before the wire)."""
    check_run_id(run_id)
    check_step(step)
    check_int("size", size, 1, MAX_BATCH)
    check_step(round, "round")


def check_state_request(run_id: str, frontier: int, history_from: int) -> None:
    """``get_state``'s argument checks (the clients run them too, before the wire)."""
    check_run_id(run_id)
    check_int("frontier", frontier, 0, MAX_FRONTIER)
    check_step(history_from, "history_from")


class Observer(Protocol):
    """Told what the coordinator did, after the store committed it (the metrics). An observer
    must not raise and must not steer: it sees answers, it changes none."""

    def results_reported(self, run_id: str, outcome: ReportOutcome) -> None: ...

    def run_deleted(self, run_id: str) -> None: ...


class Coordinator:
    """The public API of the sampling coordinator over one store (``shared/API.md``).

    ``observers`` (the service's metrics) hear of each committed report and deleted run.
    ``max_prompts``: the most prompts one run may hold (``put_run`` and ``add_prompts`` beyond it
    are a ``PayloadTooLargeError`` that changes nothing)."""

    def __init__(
        self,
        store: Store,
        observers: Sequence[Observer] = (),
        max_prompts: int = DEFAULT_MAX_PROMPTS,
    ) -> None:
        self.store = store
        self.observers = list(observers)
        self.max_prompts = check_int("max_prompts", max_prompts, 1, MAX_PROMPTS)

    # ------------------------------------------------------------------ runs
    def put_run(
        self,
        run_id: str,
        strategy: str = "cdas",
        params: Mapping[str, Any] | None = None,
        seed: int = 0,
        prompts: int | Sequence[str] | Mapping[str, Any] | None = None,
        labels: Mapping[str, float] | Sequence[float] | None = None,
    ) -> RunInfo:
        """Create a run (``created=True``), or return the same existing one (``created=False``).

        ``prompts``: a count N (ids "0".."N-1", the dataset row index), a list of ids, or the REST
        forms ``{"count": N}`` / ``{"ids": [...]}``; ``labels``: ``{id: number}`` (curriculum).
        The same id with another config or prompt set is a ``ConflictError``.
        """
        check_run_id(run_id)
        config = RunConfig.make(strategy, params, seed)
        spec = PromptSpec.parse(prompts, labels, self.max_prompts)
        return self.store.put_run(run_id, config, spec)

    def get_run(self, run_id: str) -> RunInfo:
        return self.store.get_run(check_run_id(run_id))

    def list_runs(self) -> list[RunInfo]:
        return self.store.list_runs()

    def delete_run(self, run_id: str) -> RunInfo:
        """Delete the run; returns it as it was (both front doors answer it)."""
        run = self.store.get_run(check_run_id(run_id))
        self.store.delete_run(run_id)
        for observer in self.observers:
            observer.run_deleted(run_id)
        return run

    def add_prompts(
        self,
        run_id: str,
        ids: int | Sequence[str] | Mapping[str, Any],
        labels: Mapping[str, float] | Sequence[float] | None = None,
    ) -> int:
        """Append prompts (ids or a count, as in ``put_run``); returns the run's new size. The
        run may not grow past ``max_prompts`` (checked against its size before the call: two
        racing appends can each pass, and then overshoot by at most one request's prompts)."""
        check_run_id(run_id)
        spec = PromptSpec.parse(ids, labels, self.max_prompts)
        size = self.store.get_run(run_id).size
        check_prompt_count("add_prompts", size + spec.size, self.max_prompts)
        return self.store.add_prompts(run_id, spec)

    # ------------------------------------------------------------------ steps
    def next_batch(self, run_id: str, step: int, size: int, round: int = 0) -> Batch:
        """The prompts of ``step`` (round ``round``); the same answer for the same request."""
        check_batch_request(run_id, step, size, round)
        return self.store.next_batch(run_id, step, size, round)

    def report_results(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result]
    ) -> ReportOutcome:
        """Apply a step's group results; each (step, prompt) at most once (retries are counted as
        duplicates). The whole request is validated first; an invalid one changes nothing."""
        check_run_id(run_id)
        check_step(step)
        if isinstance(results, str | bytes | Mapping) or not isinstance(results, Iterable):
            raise InvalidArgumentError(
                f"results is {describe(results)}; it must be a list of results",
                field="results",
                value=describe(results),
            )
        outcome = self.store.report_results(run_id, step, list(results))
        for observer in self.observers:
            observer.results_reported(run_id, outcome)
        return outcome

    # ------------------------------------------------------------------ reads
    def get_prompt(self, run_id: str, prompt_id: str) -> PromptInfo:
        return self.store.get_prompt(check_run_id(run_id), check_prompt_id(prompt_id))

    def get_state(self, run_id: str, frontier: int = 0, history_from: int = 0) -> RunState:
        """The dashboard state; with ``frontier`` K > 0, also the K prompts with results nearest
        the competence (K <= 1000; O(N) then). The history holds the steps >= ``history_from``
        (a dashboard that polls asks only for the steps it has not seen complete)."""
        check_state_request(run_id, frontier, history_from)
        return self.store.get_state(run_id, frontier, history_from=history_from)

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, run_id: str) -> bytes:
        """The run's whole state as bytes (``restore`` takes them back, under any run id)."""
        return self.store.snapshot(check_run_id(run_id))

    def restore(self, run_id: str, data: bytes) -> RunInfo:
        """Create or replace ``run_id`` with a snapshot's state."""
        return self.store.restore(check_run_id(run_id), data)
