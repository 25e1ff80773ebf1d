"""The store protocol: one run-level interface, two implementations (``MemoryStore`` embedded,
``RedisStore`` shared). The coordinator validates and normalizes requests and calls these; each
call is atomic: it applies completely or raises a ``CdasError`` and changes nothing.

Semantics every store must follow (the same contract tests run on each):

* ``put_run``: create the run; the same config and prompts again answer the run with
  ``created=False``; another config or prompt set under the same id is a ``ConflictError``.
* ``next_batch``: idempotent per (step, round): the same ids for the same (step, round, size);
  another size is a ``ConflictError``; round r > 0 needs round r - 1; a step never repeats a prompt.
* ``report_results``: each (step, prompt) applied at most once; the update of a prompt in a batch
  of the step uses the competence that batch was issued with, any other the competence at the
  start of the call.
* ``snapshot`` / ``restore``: the run's whole state out, and in under any run id.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from cdas.core.config import PromptSpec, RunConfig
from cdas.core.views import Batch, PromptInfo, PromptPage, ReportOutcome, RunInfo, RunState


@runtime_checkable
class Store(Protocol):
    def put_run(self, run_id: str, config: RunConfig, prompts: PromptSpec) -> RunInfo: ...

    def get_run(self, run_id: str) -> RunInfo: ...

    def list_runs(self) -> list[RunInfo]: ...

    def delete_run(self, run_id: str) -> None: ...

    def add_prompts(self, run_id: str, prompts: PromptSpec) -> int: ...

    def next_batch(self, run_id: str, step: int, size: int, round_: int) -> Batch: ...

    def report_results(self, run_id: str, step: int, results: list[Any]) -> ReportOutcome: ...

    def get_prompt(self, run_id: str, prompt_id: str) -> PromptInfo: ...

    def prompt_page(self, run_id: str, start: int, limit: int) -> PromptPage:
        """Prompts start..start+limit-1 as columns, read in O(limit) (``RunEngine.prompt_page``)."""
        ...

    def get_state(
        self, run_id: str, frontier: int = 0, history: bool = True, history_from: int = 0
    ) -> RunState: ...

    def snapshot(self, run_id: str) -> bytes: ...

    def restore(self, run_id: str, data: bytes) -> RunInfo: ...

    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` when the store cannot be reached."""
        ...
