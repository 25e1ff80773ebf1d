"""The REST contract's bodies (``shared/API.md``) as strict pydantic v2 models.

Request bodies are ``TypedDict``s validated in strict mode with unknown fields forbidden: they
come out as the plain dicts the ``Coordinator`` takes, with no model objects built per result (a
step's 1024 results validate in well under a millisecond). Types are checked here; ranges and
cross-field rules (a pass rate in [0, 1], one result form per result, a known strategy) are the
core's, so the library and both front doors reject the same inputs with the same messages.

Answers are ``BaseModel``s, used for the OpenAPI schema; the service writes the views'
``to_dict()`` directly. ``tests/test_service_contract.py`` checks these against the proto.
"""

from __future__ import annotations

from typing import Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

STRICT = ConfigDict(strict=True, extra="forbid")


class CountPrompts(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    count: int


class IdPrompts(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    ids: list[str]


class PutRunBody(TypedDict):
    """``PUT /v1/runs/{run_id}``."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    strategy: NotRequired[str]
    params: NotRequired[dict[str, Any]]
    seed: NotRequired[int]
    prompts: NotRequired[CountPrompts | IdPrompts]
    labels: NotRequired[dict[str, float]]


class AddPromptsBody(TypedDict):
    """``POST /v1/runs/{run_id}/prompts``: ``ids`` (or ``count``, ids continuing "N".."N+k-1")."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    ids: NotRequired[list[str]]
    count: NotRequired[int]
    labels: NotRequired[dict[str, float]]


class NextBatchBody(TypedDict):
    """``POST /v1/runs/{run_id}/batches``."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    step: int
    size: int
    round: NotRequired[int]


class ResultBody(TypedDict):
    """One group's outcome: ``correct`` and ``total``; ``rewards``; or ``pass_rate``, ``total``."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    prompt_id: str
    correct: NotRequired[int]
    total: NotRequired[int]
    rewards: NotRequired[list[float]]
    pass_rate: NotRequired[float]


class ReportBody(TypedDict):
    """``POST /v1/runs/{run_id}/results``."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    step: int
    results: list[ResultBody]


class AdvanceBody(TypedDict):
    """``POST /v1/runs/{run_id}/advance``: step n's results (as ``ReportBody``'s) and the size
    of step n + 1's batch."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    step: int
    results: list[ResultBody]
    size: int


# ---------------------------------------------------------------- answers
class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Counts(Answer):
    seen: int
    results: int
    duplicates: int
    rollouts: int
    batches: int


class Run(Answer):
    run_id: str
    strategy: str
    params: dict[str, Any]
    seed: int
    size: int
    step: int | None
    competence: float
    counts: Counts


class RunList(Answer):
    runs: list[Run]


class Size(Answer):
    size: int


class Batch(Answer):
    run_id: str
    step: int
    round: int
    prompt_ids: list[str]
    competence: float


class ReportResultsAnswer(Answer):
    applied: int
    duplicates: int
    competence: float


class Advance(Answer):
    """What ``report_results`` of step n and ``next_batch`` of step n + 1 would answer."""

    report: ReportResultsAnswer
    batch: Batch


class Prompt(Answer):
    prompt_id: str
    difficulty: float
    updates: int
    last_pass_rate: float | None
    last_step: int | None
    label: float | None


class PromptColumns(Answer):
    """Row k is one prompt; the fields are ``Prompt``'s, as columns."""

    prompt_id: list[str]
    difficulty: list[float]
    updates: list[int]
    last_pass_rate: list[float | None] = Field(description="null where updates is 0")
    last_step: list[int | None] = Field(description="null where updates is 0")
    label: list[float | None] | None = Field(
        description="null when the run has no labels (or the page is empty); else null where a "
        "prompt has none"
    )


class PromptPage(Answer):
    """``GET /v1/runs/{run_id}/prompts``: one page of the difficulty export."""

    run_id: str
    size: int = Field(description="the run's size when the page was read")
    start: int = Field(description="the index (registration order) of the page's first prompt")
    next: int | None = Field(description="where the next page starts; null at the end")
    columns: PromptColumns


class Histogram(Answer):
    edges: list[float]
    counts: list[int]


class StepSummary(Answer):
    step: int
    competence: float
    mean_pass_rate: float | None
    zero_gradient_ratio: float | None
    batch_size: int
    results: int
    rollouts: int


class RunState(Answer):
    run_id: str
    strategy: str
    step: int | None
    size: int
    seen: int
    retired: int = Field(
        description="prompts the strategy keeps out of selection: cdas with params.retire_after "
        "> 0 (prompts whose latest results were all pass rate 0 or 1); 0 otherwise"
    )
    competence: float
    histogram: Histogram
    history: list[StepSummary]
    frontier: list[Prompt] = Field(
        description="the prompts with results nearest the competence (?frontier=K), by difficulty"
    )


class ErrorDetail(Answer):
    code: str = Field(description="machine-readable: invalid_argument, run_not_found, ...")
    message: str = Field(description="what was wrong, naming the value")
    details: dict[str, Any]


class ErrorBody(Answer):
    error: ErrorDetail


class Readiness(Answer):
    status: str
    store: str
