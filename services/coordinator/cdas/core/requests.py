"""What a request may ask, checked the same at every door: the limits on one call, the argument
checks the library runs and the clients run before the wire, and how an export is paged.

They live below the coordinator and the clients, so that both import them from here and no
client imports the coordinator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cdas.core.config import MAX_PROMPTS
from cdas.core.validate import MAX_STEP, check_int, check_run_id, check_step
from cdas.core.views import PromptPage

MAX_BATCH = 1 << 24
"""Largest batch one call may ask for."""

MAX_FRONTIER = 1000
"""Most prompts ``get_state`` lists nearest the competence."""

MAX_PAGE = 100_000
"""Most prompts one export page holds (``prompt_page``'s ``limit``, ``export_prompts``'s
``page_size``): about 5 MB of JSON, and a store read of a few tens of milliseconds."""

DEFAULT_PAGE = 10_000
"""Prompts per export page unless asked otherwise."""


def check_batch_request(run_id: str, step: int, size: int, round: int) -> None:
    """``next_batch``'s argument checks (the gRPC client runs them too, before the wire)."""
    check_run_id(run_id)
    check_step(step)
    check_int("size", size, 1, MAX_BATCH)
    check_step(round, "round")


def check_advance_request(run_id: str, step: int, size: int) -> None:
    """``advance``'s argument checks: ``step``'s, which must leave a step after it, and the
    next batch's size (the gRPC client runs them too, before the wire)."""
    check_run_id(run_id)
    check_int("step", step, 0, MAX_STEP - 1)
    check_int("size", size, 1, MAX_BATCH)


def check_state_request(run_id: str, frontier: int, history_from: int) -> None:
    """``get_state``'s argument checks (the clients run them too, before the wire)."""
    check_run_id(run_id)
    check_int("frontier", frontier, 0, MAX_FRONTIER)
    check_step(history_from, "history_from")


def check_page_request(run_id: str, start: int, limit: int) -> None:
    """``prompt_page``'s argument checks (the clients run them too, before the wire)."""
    check_run_id(run_id)
    check_int("start", start, 0, MAX_PROMPTS)
    check_int("limit", limit, 1, MAX_PAGE)


def check_export_request(run_id: str, page_size: int, start: int, limit: int | None) -> None:
    """``export_prompts``'s argument checks (the clients run them too, before the wire)."""
    check_run_id(run_id)
    check_int("page_size", page_size, 1, MAX_PAGE)
    check_int("start", start, 0, MAX_PROMPTS)
    if limit is not None:
        check_int("limit", limit, 1, MAX_PROMPTS)


class Paging:
    """Where each page of an export starts and how many prompts it asks for: ``page_size`` at a
    time from ``start``, following each page's ``next`` until the run's end or ``limit`` prompts.
    Every door's export loop follows it (the library, both REST clients, the gRPC server and
    client), so all read the same pages."""

    def __init__(self, page_size: int, start: int, limit: int | None) -> None:
        self.page_size = page_size
        self.first = (start, page_size if limit is None else min(page_size, limit))
        self.end = None if limit is None else start + limit

    def after(self, page: PromptPage) -> tuple[int, int] | None:
        """(start, limit) of the page after ``page``; None when the export is done."""
        at = page.next
        if at is None or (self.end is not None and at >= self.end):
            return None
        return at, self.page_size if self.end is None else min(self.page_size, self.end - at)

    def pages(self, read: Callable[[int, int], PromptPage]) -> Iterator[PromptPage]:
        """The pages ``read(start, limit)`` answers: the first read now (so a bad request
        raises at the call), the others as they are iterated."""

        def rest(page: PromptPage) -> Iterator[PromptPage]:
            yield page
            while (span := self.after(page)) is not None:
                page = read(*span)
                yield page

        return rest(read(*self.first))
