"""A run's config (strategy, normalized params, seed) and the prompt set it was created with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cdas.core.errors import ConflictError, InvalidArgumentError, PayloadTooLargeError
from cdas.core.strategies import normalized_params
from cdas.core.validate import MAX_STEP, check_int, describe, is_int, is_real

MAX_PROMPTS = 1 << 31
"""Prompt indexes are 32-bit."""

DEFAULT_MAX_PROMPTS = 10**7
"""Prompts one run may hold unless the coordinator is told otherwise (``Coordinator``'s
``max_prompts``, ``cdas serve --max-prompts``): a run of N prompts costs O(N) memory, so one request
for a huge count must be refused before anything is allocated, not take the process down."""


def check_prompt_count(field: str, count: int, limit: int) -> None:
    """A ``PayloadTooLargeError`` naming ``count`` and ``limit`` when ``count > limit``."""
    if count > limit:
        raise PayloadTooLargeError(
            f"{field} would make {count} prompts; this coordinator takes at most {limit} per run "
            "(cdas serve --max-prompts)",
            field=field,
            value=count,
            limit=limit,
        )


MAX_SEED = 2**63 - 1
"""Seeds are integers in [0, 2**63 - 1]."""


def check_seed(seed: Any) -> int:
    return check_int("seed", seed, 0, MAX_SEED)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Two ``put_run`` calls describe the same run when their configs and prompts are equal."""

    strategy: str
    params: dict[str, Any]
    seed: int

    @classmethod
    def make(cls, strategy: Any, params: Any, seed: Any) -> RunConfig:
        """Validate and normalize (defaults filled in); raises ``InvalidArgumentError``."""
        params = normalized_params(strategy, params)
        return cls(strategy=strategy, params=params, seed=check_seed(seed))

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "params": self.params, "seed": self.seed}


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """Prompts to register: ``count`` ids "n".."n+count-1", or explicit ``ids``; with labels."""

    count: int = 0
    ids: Sequence[str] | None = None
    labels: Mapping[str, float] | None = None

    @property
    def size(self) -> int:
        return len(self.ids) if self.ids is not None else self.count

    @classmethod
    def parse(cls, prompts: Any, labels: Any = None, limit: int = MAX_PROMPTS) -> PromptSpec:
        """Accept an int (count), a list of ids, or the REST forms {"count": N} / {"ids": [...]}.

        Labels are ``{id: number}`` (or a sequence aligned with the ids). More than ``limit``
        prompts is a ``PayloadTooLargeError``, raised before anything per prompt is built."""
        spec = cls._prompts(prompts)
        check_prompt_count("prompts", spec.size, limit)
        return spec._with_labels(labels)

    @classmethod
    def _prompts(cls, prompts: Any) -> PromptSpec:
        if prompts is None:
            spec = cls()
        elif is_int(prompts):
            spec = cls(count=check_int("prompts.count", prompts, 0, MAX_PROMPTS))
        elif isinstance(prompts, Mapping):
            keys = set(prompts)
            if keys == {"count"}:
                spec = cls(count=check_int("prompts.count", prompts["count"], 0, MAX_PROMPTS))
            elif keys == {"ids"}:
                spec = cls(ids=_id_list("prompts.ids", prompts["ids"]))
            else:
                raise InvalidArgumentError(
                    f'prompts is {describe(prompts)}; give {{"count": N}} or {{"ids": [...]}}',
                    field="prompts",
                    value=describe(prompts),
                )
        else:
            spec = cls(ids=_id_list("prompts", prompts))
        return spec

    def _with_labels(self, labels: Any) -> PromptSpec:
        spec = self
        if labels is None:
            return spec
        if not isinstance(labels, Mapping):
            if isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
                raise InvalidArgumentError(
                    f"labels is {describe(labels)}; give {{id: number}}",
                    field="labels",
                    value=describe(labels),
                )
            if len(labels) != spec.size:
                raise InvalidArgumentError(
                    f"labels has {len(labels)} entries for {spec.size} prompts",
                    field="labels",
                    value=len(labels),
                )
            names = spec.ids if spec.ids is not None else [str(i) for i in range(spec.count)]
            labels = dict(zip(names, labels, strict=True))
        for key, value in labels.items():
            if not is_real(value):
                raise InvalidArgumentError(
                    f"labels[{key!r}] is {describe(value)}; a label is a finite number",
                    field=f"labels[{key!r}]",
                    value=describe(value),
                )
        return PromptSpec(count=spec.count, ids=spec.ids, labels=dict(labels))

    def fingerprint(self) -> str:
        """Identifies the prompt set of a ``put_run`` (count form: cheap; ids: SHA-256)."""
        digest = hashlib.sha256()
        if self.ids is None:
            digest.update(f"count:{self.count}".encode())
        else:
            for prompt_id in self.ids:
                digest.update(prompt_id.encode("utf-8", "surrogatepass") + b"\x00")
        if self.labels:
            digest.update(json.dumps(sorted(self.labels.items())).encode())
        return digest.hexdigest()


def check_same_run(
    run_id: str, config: RunConfig, fingerprint: str, asked: RunConfig, asked_fingerprint: str
) -> None:
    """A ``put_run`` of an existing run must describe it exactly; otherwise a conflict."""
    if config != asked:
        raise ConflictError(
            f"run {run_id!r} exists with another config "
            f"({config.to_dict()}, not {asked.to_dict()})",
            run_id=run_id,
        )
    if fingerprint != asked_fingerprint:
        raise ConflictError(f"run {run_id!r} exists with another initial prompt set", run_id=run_id)


def _id_list(field: str, ids: Any) -> list[str]:
    if isinstance(ids, str | bytes | Mapping) or not isinstance(ids, Sequence):
        raise InvalidArgumentError(
            f"{field} is {describe(ids)}; it must be a list of prompt ids",
            field=field,
            value=describe(ids),
        )
    if len(ids) > MAX_PROMPTS:
        raise InvalidArgumentError(f"{field} has too many ids", field=field, value=len(ids))
    return list(ids)


__all__ = [
    "DEFAULT_MAX_PROMPTS",
    "MAX_SEED",
    "MAX_STEP",
    "PromptSpec",
    "RunConfig",
    "check_prompt_count",
    "check_same_run",
    "check_seed",
]
