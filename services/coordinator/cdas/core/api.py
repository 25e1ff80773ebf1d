"""The library's operations as one protocol, each signature written once.

``cdas.Coordinator`` (the library), ``cdas.client.RestClient`` and ``cdas.client.GrpcClient``
implement ``CoordinatorApi`` (tests/test_api_protocol.py holds all three to it, statically and by
signature). Whoever calls a coordinator types against the part it uses, so any of the three, or a
test's stand-in with just those methods, fits:

- ``Batches``: ``next_batch`` and ``report_results``, a trainer's two calls a step (the rollout
  worker, the OpenRLHF loader, ``cdas bench service``), and ``advance``, the two in one call;
- ``RunSetup``: ``put_run``, which an integration calls once at start;
- ``Lookups``: ``get_run`` and ``get_prompt``, the reads a trainer makes while it runs (the
  simulated trainer);
- ``Runs``: the rest of a run's life (list, delete, add prompts);
- ``Reads``: the rest of what a run knows (``get_state``, the paged export);
- ``Snapshots``: a run's state as bytes, and back.

The asynchronous REST client has the same names with ``async``; it is not held to this protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from cdas.core.requests import DEFAULT_PAGE
from cdas.core.results import Result
from cdas.core.views import (
    Advance,
    Batch,
    PromptInfo,
    PromptPage,
    ReportOutcome,
    RunInfo,
    RunState,
)


class Batches(Protocol):
    """A step's two calls: the batch to roll out, then its groups' results; or both in one."""

    def next_batch(self, run_id: str, step: int, size: int, round: int = 0) -> Batch: ...

    def report_results(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result]
    ) -> ReportOutcome: ...

    def advance(
        self, run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result], size: int
    ) -> Advance:
        """The one-call step: report step ``step``'s results and get step ``step + 1``'s batch
        (round 0, ``size`` prompts) atomically, answering what ``report_results`` then
        ``next_batch`` would; a request either would refuse changes nothing."""
        ...


class RunSetup(Protocol):
    """Create a run, or find it unchanged (idempotent)."""

    def put_run(
        self,
        run_id: str,
        strategy: str = "cdas",
        params: Mapping[str, Any] | None = None,
        seed: int = 0,
        prompts: int | Sequence[str] | Mapping[str, Any] | None = None,
        labels: Mapping[str, float] | Sequence[float] | None = None,
    ) -> RunInfo: ...


class Lookups(Protocol):
    """A run's settings and one prompt's state."""

    def get_run(self, run_id: str) -> RunInfo: ...

    def get_prompt(self, run_id: str, prompt_id: str) -> PromptInfo: ...


class Runs(RunSetup, Protocol):
    """A run's life besides its steps."""

    def list_runs(self) -> list[RunInfo]: ...

    def delete_run(self, run_id: str) -> RunInfo: ...

    def add_prompts(
        self,
        run_id: str,
        ids: int | Sequence[str] | Mapping[str, Any],
        labels: Mapping[str, float] | Sequence[float] | None = None,
    ) -> int: ...


class Reads(Lookups, Protocol):
    """What a run knows about its prompts and itself."""

    def get_state(self, run_id: str, frontier: int = 0, history_from: int = 0) -> RunState: ...

    def prompt_page(self, run_id: str, start: int = 0, limit: int = DEFAULT_PAGE) -> PromptPage: ...

    def export_prompts(
        self,
        run_id: str,
        page_size: int = DEFAULT_PAGE,
        start: int = 0,
        limit: int | None = None,
    ) -> Iterator[PromptPage]: ...


class Snapshots(Protocol):
    """A run's whole state as bytes (the snapshot format), and a run made from them."""

    def snapshot(self, run_id: str) -> bytes: ...

    def restore(self, run_id: str, data: bytes) -> RunInfo: ...


class CoordinatorApi(Batches, Runs, Reads, Snapshots, Protocol):
    """Every operation of the library, as the Coordinator and the two synchronous clients offer
    them."""
