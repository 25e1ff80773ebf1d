"""The coordinator: the one object every front door (library, REST, gRPC) calls.

It checks and parses each request once (ids, steps, sizes, strategy and params, prompt specs,
results into columns), then hands the store one ``Operation``: the engine method to run on the
run, which the store runs atomically (``cdas.store.base``). It holds no run state itself, so any
number of coordinators may share one store.

A call, door to Redis and back: the door decodes its wire form (``service/rest/app.py``,
``service/grpc_server.py``) and calls a method here; the method checks and parses, and calls
``store.transact``; ``RedisStore.transact`` reads the run (``LOAD``), runs the engine
(``core/engine.py``) on it, and commits its writes in one script; the answer (a view of
``core/views.py``) goes back up, and the door encodes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from cdas.core.config import (
    DEFAULT_MAX_PROMPTS,
    MAX_PROMPTS,
    PromptSpec,
    RunConfig,
    check_prompt_count,
)
from cdas.core.engine import RunEngine
from cdas.core.errors import InvalidArgumentError, RunNotFoundError
from cdas.core.requests import (
    DEFAULT_PAGE,
    MAX_BATCH,
    MAX_FRONTIER,
    MAX_PAGE,
    Paging,
    check_advance_request,
    check_batch_request,
    check_export_request,
    check_page_request,
    check_state_request,
)
from cdas.core.results import ParsedResults, Result, parse_results
from cdas.core.validate import check_int, check_prompt_id, check_run_id, check_step
from cdas.core.views import (
    Advance,
    Batch,
    PromptInfo,
    PromptPage,
    ReportOutcome,
    RunInfo,
    RunState,
)
from cdas.store.base import Operation, Store
from cdas.store.group_commit import GroupCommit

__all__ = [
    "DEFAULT_PAGE",
    "MAX_BATCH",
    "MAX_FRONTIER",
    "MAX_PAGE",
    "Coordinator",
    "Observer",
    "Paging",
    "check_batch_request",
    "check_export_request",
    "check_page_request",
    "check_state_request",
]


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
        self.commits = GroupCommit(store)
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
        return self.store.transact(check_run_id(run_id), Operation("get_run", RunEngine.info))

    def list_runs(self) -> list[RunInfo]:
        """Every run, by id. O(runs) store calls."""
        out = []
        for run_id in self.store.run_ids():
            try:
                out.append(self.store.transact(run_id, Operation("list_runs", RunEngine.info)))
            except RunNotFoundError:
                continue  # deleted since the listing
        return out

    def delete_run(self, run_id: str) -> RunInfo:
        """Delete the run; returns it as it was (both front doors answer it)."""
        run = self.get_run(run_id)
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
        run may not grow past ``max_prompts`` (checked in the same store transaction as the
        append, against the size it lands on, so racing appends cannot overshoot).
        Exactly one of ids and count, the one rule both doors pass on: REST hands over what its
        body held of ``{"ids"}`` / ``{"count"}``, gRPC its oneof (None when unset)."""
        check_run_id(run_id)
        if ids is None or (isinstance(ids, Mapping) and set(ids) not in ({"ids"}, {"count"})):
            raise InvalidArgumentError(
                'give "ids": [...] (or "count": N) to add prompts', field="ids"
            )
        spec = PromptSpec.parse(ids, labels, self.max_prompts)
        limit = self.max_prompts

        def body(engine: RunEngine) -> int:
            check_prompt_count("add_prompts", engine.scalars.n + spec.size, limit)
            return engine.add_prompts(spec)

        return self.store.transact(run_id, Operation("add_prompts", body))

    # ------------------------------------------------------------------ steps
    def next_batch(self, run_id: str, step: int, size: int, round: int = 0) -> Batch:
        """The prompts of ``step`` (round ``round``); the same answer for the same request."""
        check_batch_request(run_id, step, size, round)

        def body(engine: RunEngine) -> Batch:
            return engine.next_batch(step, size, round)

        return self.store.transact(run_id, Operation("next_batch", body, step))

    def report_results(
        self,
        run_id: str,
        step: int,
        results: Iterable[Mapping[str, Any] | Result] | ParsedResults,
    ) -> ReportOutcome:
        """Apply a step's group results; each (step, prompt) at most once (retries are counted as
        duplicates). The whole request is validated first; an invalid one changes nothing.
        ``results`` may come parsed already (``parse_results``; the gRPC door's columns).
        Concurrent reports to one run share a transaction (``cdas.store.group_commit``); each
        returns once its results are committed."""
        check_run_id(run_id)
        check_step(step)
        parsed = _parsed(results)

        outcome = self.commits.report(run_id, step, parsed, _prompt_rows(parsed))
        self._reported(run_id, outcome)
        return outcome

    def advance(
        self,
        run_id: str,
        step: int,
        results: Iterable[Mapping[str, Any] | Result] | ParsedResults,
        size: int,
    ) -> Advance:
        """The one-call step: report step ``step``'s results and get step ``step + 1``'s batch
        (round 0, ``size`` prompts), in one store transaction. Answers exactly what
        ``report_results`` then ``next_batch`` would, and is as idempotent (a retry counts the
        results as duplicates and answers the same batch); a request either call would refuse
        changes nothing at all, the results included."""
        check_advance_request(run_id, step, size)
        parsed = _parsed(results)

        def body(engine: RunEngine) -> Advance:
            return engine.advance(step, parsed, size)

        answer = self.store.transact(run_id, Operation("advance", body, step, _prompt_rows(parsed)))
        self._reported(run_id, answer.report)
        return answer

    def _reported(self, run_id: str, outcome: ReportOutcome) -> None:
        for observer in self.observers:
            observer.results_reported(run_id, outcome)

    # ------------------------------------------------------------------ reads
    def get_prompt(self, run_id: str, prompt_id: str) -> PromptInfo:
        check_run_id(run_id)
        check_prompt_id(prompt_id)

        def body(engine: RunEngine) -> PromptInfo:
            return engine.get_prompt(prompt_id)

        return self.store.transact(run_id, Operation("get_prompt", body))

    def prompt_page(self, run_id: str, start: int = 0, limit: int = DEFAULT_PAGE) -> PromptPage:
        """Prompts ``start``..``start + limit - 1`` of the run, in registration order, as columns
        (id, difficulty, updates, last pass rate, last step, label) with the run's size and the
        index the next page starts at (None at the end). ``limit`` <= 100000. O(limit) on either
        store, whatever the run's size (Redis: a few round trips, slices of the run's strings)."""
        check_page_request(run_id, start, limit)
        return self._page(run_id, start, limit)

    def _page(self, run_id: str, start: int, limit: int) -> PromptPage:
        def body(engine: RunEngine) -> PromptPage:
            return engine.prompt_page(start, limit)

        return self.store.transact(run_id, Operation("prompt_page", body))

    def export_prompts(
        self,
        run_id: str,
        page_size: int = DEFAULT_PAGE,
        start: int = 0,
        limit: int | None = None,
    ) -> Iterator[PromptPage]:
        """The difficulty export: every prompt of the run from ``start`` (at most ``limit`` of
        them), as pages of ``page_size`` read one at a time, so memory stays O(page_size) for
        10^7 prompts. The first page is read now (an unknown run raises here); a page's rows
        are read at one moment, a run that trains meanwhile at several (export a finished run,
        or a restored snapshot, for one moment). O(N / page_size) store reads in all."""
        check_export_request(run_id, page_size, start, limit)
        paging = Paging(page_size, start, limit)
        return paging.pages(lambda at, count: self._page(run_id, at, count))

    def get_state(self, run_id: str, frontier: int = 0, history_from: int = 0) -> RunState:
        """The dashboard state; with ``frontier`` K > 0, also the K prompts with results nearest
        the competence (K <= 1000; O(N) then). The history holds the steps >= ``history_from``
        (a dashboard that polls asks only for the steps it has not seen complete)."""
        check_state_request(run_id, frontier, history_from)

        def body(engine: RunEngine) -> RunState:
            return engine.state(frontier, True, history_from)

        return self.store.transact(run_id, Operation("get_state", body))

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, run_id: str) -> bytes:
        """The run's whole state as bytes (``restore`` takes them back, under any run id)."""
        return self.store.transact(check_run_id(run_id), Operation("snapshot", RunEngine.snapshot))

    def restore(self, run_id: str, data: bytes) -> RunInfo:
        """Create or replace ``run_id`` with a snapshot's state."""
        return self.store.restore(check_run_id(run_id), data)


def _parsed(results: Iterable[Mapping[str, Any] | Result] | ParsedResults) -> ParsedResults:
    """The one parse of a request's results (``parse_results``), unless the door parsed them."""
    return results if isinstance(results, ParsedResults) else parse_results(results)


def _prompt_rows(parsed: ParsedResults) -> np.ndarray:
    """The rows the results' ids name when they are row indexes ("0".."N-1", the usual ids): a
    store reads their records with the run (``Operation.prefetch``); other ids are -1."""
    return parsed.canonical[parsed.canonical >= 0]
