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
    nearest the competence, when asked for (``?frontier=K``)."""

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "strategy": self.strategy,
            "step": self.step,
            "size": self.size,
            "seen": self.seen,
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
        )


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))
