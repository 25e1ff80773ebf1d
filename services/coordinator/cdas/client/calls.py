"""The library's methods as REST requests, shared by the sync and async REST clients.

Each operation is a ``Call``: the HTTP method and path, the JSON (or raw) body, how to read the
answer into the library's view, and whether repeating it is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from cdas.core.errors import InvalidArgumentError
from cdas.core.requests import check_page_request, check_state_request
from cdas.core.results import Result
from cdas.core.validate import check_prompt_id, check_run_id
from cdas.core.views import (
    Advance,
    Batch,
    PromptInfo,
    PromptPage,
    ReportOutcome,
    RunInfo,
    RunState,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    decode: Callable[[int, Any], T]
    """(status, JSON answer or raw bytes) -> the library's return value."""
    json: Any = None
    content: bytes | None = None
    raw: bool = False
    """The answer is bytes (a snapshot), not JSON."""
    idempotent: bool = True


def _seg(text: str) -> str:
    return quote(text, safe="")


def _run_path(run_id: str, tail: str = "") -> str:
    """The run's URL path; an id that is not one (empty, with a slash) fails here as in the
    library, instead of reaching another URL."""
    return f"/v1/runs/{_seg(check_run_id(run_id))}{tail}"


def prompts_body(prompts: Any) -> Any:
    """``put_run``'s ``prompts`` argument in REST form: N -> {"count": N}, ids -> {"ids": ids}."""
    if prompts is None or isinstance(prompts, Mapping):
        return prompts
    if isinstance(prompts, int) and not isinstance(prompts, bool):
        return {"count": prompts}
    if isinstance(prompts, str | bytes):
        return prompts  # the server names the bad value
    return {"ids": list(prompts)}


def labels_body(prompts: Any, labels: Any) -> Any:
    """Labels in REST form ``{id: number}``; a sequence is aligned with the prompts' ids."""
    if labels is None or isinstance(labels, Mapping):
        return labels
    if isinstance(prompts, Mapping):
        prompts = prompts.get("count", prompts.get("ids"))
    if isinstance(prompts, int) and not isinstance(prompts, bool):
        names: Sequence[str] = [str(i) for i in range(prompts)]
    else:
        names = list(prompts or [])
    labels = list(labels)
    if len(labels) != len(names):  # the library's error (cdas.core.config.PromptSpec.parse)
        raise InvalidArgumentError(
            f"labels has {len(labels)} entries for {len(names)} prompts",
            field="labels",
            value=len(labels),
        )
    return dict(zip(names, labels, strict=True))


def result_body(result: Mapping[str, Any] | Result) -> Any:
    return result.to_dict() if isinstance(result, Result) else result


def put_run(
    run_id: str,
    strategy: str,
    params: Mapping[str, Any] | None,
    seed: int,
    prompts: Any,
    labels: Any,
) -> Call[RunInfo]:
    body: dict[str, Any] = {"strategy": strategy, "seed": seed}
    if params is not None:
        body["params"] = dict(params) if isinstance(params, Mapping) else params
    if prompts is not None:
        body["prompts"] = prompts_body(prompts)
    if labels is not None:
        body["labels"] = labels_body(prompts, labels)
    return Call(
        "PUT",
        _run_path(run_id),
        lambda status, data: RunInfo.from_dict(data, created=status == 201),
        json=body,
    )


def get_run(run_id: str) -> Call[RunInfo]:
    return Call("GET", _run_path(run_id), lambda _s, data: RunInfo.from_dict(data))


def list_runs() -> Call[list[RunInfo]]:
    return Call("GET", "/v1/runs", lambda _s, data: [RunInfo.from_dict(r) for r in data["runs"]])


def delete_run(run_id: str) -> Call[RunInfo]:
    return Call(
        "DELETE", _run_path(run_id), lambda _s, data: RunInfo.from_dict(data), idempotent=False
    )


def add_prompts(run_id: str, ids: Any, labels: Any) -> Call[int]:
    prompts = prompts_body(ids)
    body: dict[str, Any] = dict(prompts) if isinstance(prompts, Mapping) else {"ids": prompts}
    if labels is not None:
        body["labels"] = labels_body(ids, labels)
    return Call(
        "POST",
        _run_path(run_id, "/prompts"),
        lambda _s, data: int(data["size"]),
        json=body,
        idempotent=False,
    )


def next_batch(run_id: str, step: int, size: int, round: int) -> Call[Batch]:
    return Call(
        "POST",
        _run_path(run_id, "/batches"),
        lambda _s, data: Batch.from_dict(data),
        json={"step": step, "size": size, "round": round},
    )


def results_body(results: Iterable[Mapping[str, Any] | Result]) -> Any:
    """A request's results in REST form (``report_results``'s and ``advance``'s)."""
    if isinstance(results, str | bytes | Mapping):
        return results  # the server names the bad value
    return [result_body(r) for r in results]


def report_results(
    run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result]
) -> Call[ReportOutcome]:
    return Call(
        "POST",
        _run_path(run_id, "/results"),
        lambda _s, data: ReportOutcome.from_dict(data),
        json={"step": step, "results": results_body(results)},
    )


def advance(
    run_id: str, step: int, results: Iterable[Mapping[str, Any] | Result], size: int
) -> Call[Advance]:
    """The one-call step; idempotent as its two halves are, so retried as they are."""
    return Call(
        "POST",
        _run_path(run_id, "/advance"),
        lambda _s, data: Advance.from_dict(data),
        json={"step": step, "results": results_body(results), "size": size},
    )


def get_prompt(run_id: str, prompt_id: str) -> Call[PromptInfo]:
    return Call(
        "GET",
        _run_path(run_id, f"/prompts/{_seg(check_prompt_id(prompt_id))}"),
        lambda _s, data: PromptInfo.from_dict(data),
    )


def get_state(run_id: str, frontier: int = 0, history_from: int = 0) -> Call[RunState]:
    check_state_request(run_id, frontier, history_from)
    params = {"frontier": frontier, "history_from": history_from}
    query = "&".join(f"{k}={v}" for k, v in params.items() if v)
    query = "?" + query if query else ""
    return Call(
        "GET", _run_path(run_id, "/state" + query), lambda _s, data: RunState.from_dict(data)
    )


def prompt_page(run_id: str, start: int, limit: int) -> Call[PromptPage]:
    """One page of the difficulty export (JSON columns); the clients' ``export_prompts`` loops
    over these with ``cdas.core.requests.Paging``."""
    check_page_request(run_id, start, limit)
    return Call(
        "GET",
        _run_path(run_id, f"/prompts?start={start}&limit={limit}"),
        lambda _s, data: PromptPage.from_dict(data),
    )


def snapshot(run_id: str) -> Call[bytes]:
    return Call("GET", _run_path(run_id, "/snapshot"), lambda _s, data: bytes(data), raw=True)


def restore(run_id: str, data: bytes) -> Call[RunInfo]:
    return Call(
        "PUT",
        _run_path(run_id, "/snapshot"),
        lambda _s, answer: RunInfo.from_dict(answer),
        content=bytes(data),
    )
