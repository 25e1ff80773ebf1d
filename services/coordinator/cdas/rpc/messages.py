"""Conversions between the coordinator's views (``cdas.core.views``) and the v1 proto messages.

Both directions live here so the server (views -> messages) and the client (messages -> views)
cannot drift. Optional proto fields map to ``None``; ``google.protobuf.Struct`` carries params,
whose numbers are doubles on the wire, so integral numbers are read back as integers (the
strategies' integer params, such as ``max_rounds``, check for ``int``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2

from cdas.core.config import PromptSpec
from cdas.core.errors import InvalidArgumentError
from cdas.core.results import ParsedResults, parse_columns
from cdas.core.views import (
    Advance,
    Batch,
    PromptColumns,
    PromptInfo,
    PromptPage,
    ReportOutcome,
    RunInfo,
    RunState,
    StepSummary,
)
from cdas.v1 import coordinator_pb2 as pb

SNAPSHOT_CHUNK = 1 << 20
"""Snapshot and restore stream the state in chunks of at most 1 MiB."""

_EXACT_INT = float(2**53)


# ---------------------------------------------------------------- JSON values <-> Struct
def struct_of(values: Mapping[str, Any] | None) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    if values:
        message.update(dict(values))
    return message


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_INT:
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def dict_of(message: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain JSON values, integral numbers as ``int``."""
    plain = _plain(json_format.MessageToDict(message))
    assert isinstance(plain, dict)
    return plain


def _opt(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


# ---------------------------------------------------------------- requests (client -> server)
def prompts_message(spec: PromptSpec) -> pb.Prompts:
    """The ``Prompts`` oneof of a parsed (validated) prompt spec: its ids, or its count."""
    if spec.ids is not None:
        return pb.Prompts(ids=pb.IdList(ids=list(spec.ids)))
    return pb.Prompts(count=spec.count)


def prompts_value(message: pb.Prompts | None) -> int | list[str] | None:
    if message is None:
        return None
    kind = message.WhichOneof("kind")
    if kind == "count":
        return int(message.count)
    if kind == "ids":
        return list(message.ids.ids)
    return None


def labels_value(labels: Mapping[str, float]) -> dict[str, float] | None:
    return dict(labels) if labels else None


def result_message(result: Mapping[str, Any]) -> pb.Result:
    message = pb.Result(prompt_id=result.get("prompt_id", ""))
    for name in ("correct", "total", "pass_rate"):
        if result.get(name) is not None:
            setattr(message, name, result[name])
    if result.get("rewards") is not None:
        message.rewards.extend(result["rewards"])
    return message


def results_fields(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A request's results as its fields (``ReportResultsRequest``'s and ``AdvanceRequest``'s):
    ``columns`` when all are ``{prompt_id, correct, total}`` with the right types (then the
    server needs no per-message work), else ``results``, one message each."""
    if results and all(_columnar(r) for r in results):
        columns = pb.ResultColumns(
            prompt_ids=[r["prompt_id"] for r in results],
            correct=[r["correct"] for r in results],
            total=[r["total"] for r in results],
        )
        return {"columns": columns}
    return {"results": [result_message(r) for r in results]}


def _columnar(result: Mapping[str, Any]) -> bool:
    return (
        len(result) == 3
        and type(result.get("prompt_id")) is str
        and type(result.get("correct")) is int
        and type(result.get("total")) is int
    )


def results_value(
    request: pb.ReportResultsRequest | pb.AdvanceRequest,
) -> list[dict[str, Any]] | ParsedResults:
    """The request's results for the coordinator, from either form (a report's or an advance's:
    the same fields): columns parsed straight into ``ParsedResults`` (no dict per result; the
    coordinator takes them as parsed), ``results`` messages as the dicts it parses."""
    if not request.HasField("columns"):
        return result_dicts(request.results)
    cols = request.columns
    n = len(cols.prompt_ids)
    if request.results or len(cols.correct) != n or len(cols.total) != n:
        raise InvalidArgumentError(
            f"columns has {n} prompt ids, {len(cols.correct)} correct and {len(cols.total)} "
            f"total counts{' and results too' if request.results else ''}; give equal-length "
            "columns or results, not both",
            field="columns",
        )
    return parse_columns(cols.prompt_ids, cols.correct, cols.total)


def result_dicts(messages: Any) -> list[dict[str, Any]]:
    """A request's ``results`` messages as the dicts the core parses (request order kept)."""
    out: list[dict[str, Any]] = []
    append = out.append
    for m in messages:
        item: dict[str, Any] = {"prompt_id": m.prompt_id}
        if m.HasField("correct"):
            item["correct"] = m.correct
        if m.HasField("total"):
            item["total"] = m.total
        if m.HasField("pass_rate"):
            item["pass_rate"] = m.pass_rate
        if m.rewards:
            item["rewards"] = list(m.rewards)
        append(item)
    return out


def snapshot_chunks(data: bytes) -> Iterator[pb.SnapshotChunk]:
    for start in range(0, max(len(data), 1), SNAPSHOT_CHUNK):
        yield pb.SnapshotChunk(data=data[start : start + SNAPSHOT_CHUNK])


# ---------------------------------------------------------------- views <-> answers
def run_message(run: RunInfo) -> pb.Run:
    return pb.Run(
        run_id=run.run_id,
        strategy=run.strategy,
        params=struct_of(run.params),
        seed=run.seed,
        size=run.size,
        step=run.step,
        competence=run.competence,
        counts=pb.Counts(
            seen=run.seen,
            results=run.results,
            duplicates=run.duplicates,
            rollouts=run.rollouts,
            batches=run.batches,
        ),
    )


def run_view(message: pb.Run, created: bool = False) -> RunInfo:
    c = message.counts
    return RunInfo(
        run_id=message.run_id,
        strategy=message.strategy,
        params=dict_of(message.params),
        seed=message.seed,
        size=message.size,
        step=_opt(message, "step"),
        competence=message.competence,
        seen=c.seen,
        results=c.results,
        duplicates=c.duplicates,
        rollouts=c.rollouts,
        batches=c.batches,
        created=created,
    )


def batch_message(batch: Batch) -> pb.Batch:
    return pb.Batch(
        run_id=batch.run_id,
        step=batch.step,
        round=batch.round,
        prompt_ids=batch.prompt_ids,
        competence=batch.competence,
    )


def batch_view(message: pb.Batch) -> Batch:
    return Batch(
        run_id=message.run_id,
        step=message.step,
        round=message.round,
        prompt_ids=list(message.prompt_ids),
        competence=message.competence,
    )


def outcome_message(outcome: ReportOutcome) -> pb.ReportResultsResponse:
    return pb.ReportResultsResponse(
        applied=outcome.applied, duplicates=outcome.duplicates, competence=outcome.competence
    )


def outcome_view(message: pb.ReportResultsResponse) -> ReportOutcome:
    return ReportOutcome(
        applied=message.applied, duplicates=message.duplicates, competence=message.competence
    )


def advance_message(advance: Advance) -> pb.AdvanceResponse:
    return pb.AdvanceResponse(
        report=outcome_message(advance.report), batch=batch_message(advance.batch)
    )


def advance_view(message: pb.AdvanceResponse) -> Advance:
    return Advance(report=outcome_view(message.report), batch=batch_view(message.batch))


def prompt_message(prompt: PromptInfo) -> pb.Prompt:
    return pb.Prompt(
        prompt_id=prompt.prompt_id,
        difficulty=prompt.difficulty,
        updates=prompt.updates,
        last_pass_rate=prompt.last_pass_rate,
        last_step=prompt.last_step,
        label=prompt.label,
    )


def prompt_view(message: pb.Prompt) -> PromptInfo:
    return PromptInfo(
        prompt_id=message.prompt_id,
        difficulty=message.difficulty,
        updates=message.updates,
        last_pass_rate=_opt(message, "last_pass_rate"),
        last_step=_opt(message, "last_step"),
        label=_opt(message, "label"),
    )


def prompt_page_message(page: PromptPage) -> pb.PromptPage:
    """A page as the proto's columns: null is NaN (pass rate, label) or -1 (last step), since a
    repeated field cannot hold it; no labels at all is an empty ``label``. O(page)."""
    c = page.columns
    return pb.PromptPage(
        run_id=page.run_id,
        size=page.size,
        start=page.start,
        next=page.next,
        columns=pb.PromptColumns(
            prompt_id=c.prompt_id,
            difficulty=c.difficulty,
            updates=c.updates,
            last_pass_rate=[math.nan if v is None else v for v in c.last_pass_rate],
            last_step=[-1 if v is None else v for v in c.last_step],
            label=[] if c.label is None else [math.nan if v is None else v for v in c.label],
        ),
    )


def prompt_page_view(message: pb.PromptPage) -> PromptPage:
    """The page a ``prompt_page_message`` carries, nulls restored where ``updates`` is 0 (as the
    core decides them) and where a label is NaN. O(page)."""
    c = message.columns
    updates = list(c.updates)
    updated = [u > 0 for u in updates]
    return PromptPage(
        run_id=message.run_id,
        size=message.size,
        start=message.start,
        next=_opt(message, "next"),
        columns=PromptColumns(
            prompt_id=list(c.prompt_id),
            difficulty=list(c.difficulty),
            updates=updates,
            last_pass_rate=[
                v if u else None for v, u in zip(c.last_pass_rate, updated, strict=True)
            ],
            last_step=[v if u else None for v, u in zip(c.last_step, updated, strict=True)],
            label=[None if math.isnan(v) else v for v in c.label] if c.label else None,
        ),
    )


def state_message(state: RunState) -> pb.RunState:
    return pb.RunState(
        run_id=state.run_id,
        strategy=state.strategy,
        step=state.step,
        size=state.size,
        seen=state.seen,
        retired=state.retired,
        competence=state.competence,
        histogram=pb.Histogram(edges=state.histogram_edges, counts=state.histogram_counts),
        history=[
            pb.StepSummary(
                step=s.step,
                competence=s.competence,
                mean_pass_rate=s.mean_pass_rate,
                zero_gradient_ratio=s.zero_gradient_ratio,
                batch_size=s.batch_size,
                results=s.results,
                rollouts=s.rollouts,
            )
            for s in state.history
        ],
        frontier=[prompt_message(p) for p in state.frontier],
    )


def state_view(message: pb.RunState) -> RunState:
    return RunState(
        run_id=message.run_id,
        strategy=message.strategy,
        step=_opt(message, "step"),
        size=message.size,
        seen=message.seen,
        competence=message.competence,
        histogram_edges=list(message.histogram.edges),
        histogram_counts=list(message.histogram.counts),
        history=[
            StepSummary(
                step=s.step,
                competence=s.competence,
                mean_pass_rate=_opt(s, "mean_pass_rate"),
                zero_gradient_ratio=_opt(s, "zero_gradient_ratio"),
                batch_size=s.batch_size,
                results=s.results,
                rollouts=s.rollouts,
            )
            for s in message.history
        ],
        frontier=[prompt_view(p) for p in message.frontier],
        retired=message.retired,
    )
