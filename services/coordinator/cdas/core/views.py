"""The answers the coordinator gives, as plain frozen dataclasses with ``to_dict`` in the shape of
the REST contract (``shared/API.md``). The library, the REST and the gRPC doors return the same;
``from_dict`` reads the REST shape back (the SDK's REST client)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run's identity, config and counters (``GET /v1/runs/{run_id}``)."""

    run_id: str
    strategy: str
    params: dict[str, Any]
    seed: int
    size: int
    step: int | None
    competence: float
    seen: int
    results: int
    duplicates: int
    rollouts: int
    batches: int
    created: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "strategy": self.strategy,
            "params": self.params,
            "seed": self.seed,
            "size": self.size,
            "step": self.step,
            "competence": self.competence,
            "counts": {
                "seen": self.seen,
                "results": self.results,
                "duplicates": self.duplicates,
                "rollouts": self.rollouts,
                "batches": self.batches,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], created: bool = False) -> RunInfo:
        counts = data["counts"]
        return cls(
            run_id=data["run_id"],
            strategy=data["strategy"],
            params=data["params"],
            seed=data["seed"],
            size=data["size"],
            step=data["step"],
            competence=data["competence"],
            seen=counts["seen"],
            results=counts["results"],
            duplicates=counts["duplicates"],
            rollouts=counts["rollouts"],
            batches=counts["batches"],
            created=created,
        )


@dataclass(frozen=True, slots=True)
class Batch:
    """The prompts of one (step, round) and the competence they were chosen with."""

    run_id: str
    step: int
    round: int
    prompt_ids: list[str]
    competence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step": self.step,
            "round": self.round,
            "prompt_ids": self.prompt_ids,
            "competence": self.competence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Batch:
        return cls(**{name: data[name] for name in _fields(cls)})


@dataclass(frozen=True, slots=True)
class AppliedGroups:
    """The groups one report applied, for observers in the same process (the metrics): the
    difficulty each prompt was trained at (D before this update, meaningful where ``updates``,
    the prompt's earlier updates, is above 0), its pass rate, its rollouts, and whether its
    rewards had zero variance. Never sent over the wire."""

    difficulty: npt.NDArray[np.float64]
    updates: npt.NDArray[np.int32]
    pass_rate: npt.NDArray[np.float64]
    total: npt.NDArray[np.int64]
    zero_gradient: npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """How many results were applied, how many were duplicates, and the competence after;
    ``groups``: what was applied (in-process answers only; not part of equality)."""

    applied: int
    duplicates: int
    competence: float
    groups: AppliedGroups | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "duplicates": self.duplicates,
            "competence": self.competence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportOutcome:
        return cls(data["applied"], data["duplicates"], data["competence"])


@dataclass(frozen=True, slots=True)
class Advance:
    """The one-call step's answer: step n's ``report_results`` and step n + 1's batch (round 0),
    what the two calls would have answered."""

    report: ReportOutcome
    batch: Batch

    def to_dict(self) -> dict[str, Any]:
        return {"report": self.report.to_dict(), "batch": self.batch.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Advance:
        return cls(ReportOutcome.from_dict(data["report"]), Batch.from_dict(data["batch"]))


@dataclass(frozen=True, slots=True)
class PromptInfo:
    prompt_id: str
    difficulty: float
    updates: int
    last_pass_rate: float | None
    last_step: int | None
    label: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "difficulty": self.difficulty,
            "updates": self.updates,
            "last_pass_rate": self.last_pass_rate,
            "last_step": self.last_step,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptInfo:
        return cls(
            prompt_id=data["prompt_id"],
            difficulty=data["difficulty"],
            updates=data["updates"],
            last_pass_rate=data["last_pass_rate"],
            last_step=data["last_step"],
            label=data.get("label"),
        )


@dataclass(frozen=True, slots=True)
class PromptColumns:
    """Some prompts' ``PromptInfo`` fields as columns (row k is one prompt): what a team curating
    the next run's data reads for every prompt at once. ``last_pass_rate`` and ``last_step`` are
    None where ``updates`` is 0; ``label`` is None as a whole when the run has no labels (or the
    columns are empty), else None where a prompt has none."""

    prompt_id: list[str] = field(default_factory=list)
    difficulty: list[float] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)
    last_pass_rate: list[float | None] = field(default_factory=list)
    last_step: list[int | None] = field(default_factory=list)
    label: list[float | None] | None = None

    def __len__(self) -> int:
        return len(self.prompt_id)

    def rows(self) -> list[PromptInfo]:
        """The columns as one ``PromptInfo`` per prompt (what ``get_prompt`` answers). O(len)."""
        labels = self.label if self.label is not None else [None] * len(self)
        return [
            PromptInfo(*row)
            for row in zip(
                self.prompt_id,
                self.difficulty,
                self.updates,
                self.last_pass_rate,
                self.last_step,
                labels,
                strict=True,
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _fields(PromptColumns)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptColumns:
        return cls(**{name: data[name] for name in _fields(cls)})


@dataclass(frozen=True, slots=True)
class PromptPage:
    """Prompts ``start``, ``start + 1``, ... of a run in registration order, as columns
    (``GET /v1/runs/{run_id}/prompts``, gRPC ``ExportPrompts``): the difficulty export.

    ``size``: the run's size when the page was read; ``next``: where the following page starts,
    None when this page reaches the end. A page's rows are read at one moment (under the run's
    lock; on Redis in one GETRANGE); pages of a run that trains meanwhile, at several."""

    run_id: str
    size: int
    start: int
    next: int | None
    columns: PromptColumns

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "size": self.size,
            "start": self.start,
            "next": self.next,
            "columns": self.columns.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptPage:
        return cls(
            run_id=data["run_id"],
            size=data["size"],
            start=data["start"],
            next=data["next"],
            columns=PromptColumns.from_dict(data["columns"]),
        )


@dataclass(frozen=True, slots=True)
class StepSummary:
    """One step of the history: competence after its latest results (at issue while it has none),
    mean pass rate and zero-gradient share of its results, prompts issued, rollouts reported."""

    step: int
    competence: float
    mean_pass_rate: float | None
    zero_gradient_ratio: float | None
    batch_size: int
    results: int
    rollouts: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "competence": self.competence,
            "mean_pass_rate": self.mean_pass_rate,
            "zero_gradient_ratio": self.zero_gradient_ratio,
            "batch_size": self.batch_size,
            "results": self.results,
            "rollouts": self.rollouts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepSummary:
        return cls(**{name: data[name] for name in _fields(cls)})


@dataclass(frozen=True, slots=True)
class RunState:
    """What a dashboard shows (``GET /v1/runs/{run_id}/state``); ``frontier``: the prompts
    nearest the competence, when asked for (``?frontier=K``); ``retired``: the prompts the
    strategy keeps out of selection (CDAS with ``retire_after``; 0 otherwise)."""

    run_id: str
    strategy: str
    step: int | None
    size: int
    seen: int
    competence: float
    histogram_edges: list[float]
    histogram_counts: list[int]
    history: list[StepSummary] = field(default_factory=list)
    frontier: list[PromptInfo] = field(default_factory=list)
    retired: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "strategy": self.strategy,
            "step": self.step,
            "size": self.size,
            "seen": self.seen,
            "retired": self.retired,
            "competence": self.competence,
            "histogram": {"edges": self.histogram_edges, "counts": self.histogram_counts},
            "history": [s.to_dict() for s in self.history],
            "frontier": [p.to_dict() for p in self.frontier],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        return cls(
            run_id=data["run_id"],
            strategy=data["strategy"],
            step=data["step"],
            size=data["size"],
            seen=data["seen"],
            competence=data["competence"],
            histogram_edges=data["histogram"]["edges"],
            histogram_counts=data["histogram"]["counts"],
            history=[StepSummary.from_dict(s) for s in data["history"]],
            frontier=[PromptInfo.from_dict(p) for p in data.get("frontier", [])],
            retired=data.get("retired", 0),
        )


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))
