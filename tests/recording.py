"""A coordinator client that logs a trainer's step calls and passes each on: what the
integration tests use to show which calls an integration made, in which order (``advance``
where a step's post is followed by the next step's ask)."""

from __future__ import annotations

from typing import Any


class CallLog:
    """Logs ``(name, step, round)`` for ``next_batch``, ``report_results`` and ``advance``
    (round 0 for the last two), and passes every call on to ``inner``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int, int]] = []

    def put_run(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.put_run(*args, **kwargs)

    def next_batch(self, run_id: str, step: int, size: int, round: int = 0) -> Any:
        self.calls.append(("next_batch", step, round))
        return self.inner.next_batch(run_id, step, size, round)

    def report_results(self, run_id: str, step: int, results: Any) -> Any:
        self.calls.append(("report_results", step, 0))
        return self.inner.report_results(run_id, step, results)

    def advance(self, run_id: str, step: int, results: Any, size: int) -> Any:
        self.calls.append(("advance", step, 0))
        return self.inner.advance(run_id, step, results, size)
