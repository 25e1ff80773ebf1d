"""Curriculum sampling (Kimi k1.5): offline difficulty labels per prompt, admitted by a schedule.

Every prompt carries a label (MATH level 1-5, say) given with the prompts. The ``schedule`` param is
a list of stages; a stage admits the labels in [min_label, max_label] (either bound may be omitted)
for the steps below its ``until_step`` (omitted on the last stage: forever; after the last
``until_step`` the last stage stays in force)::

    [{"until_step": 55}, {"min_label": 4}]     the default: the paper's run, all levels for the
                                               first half of 110 steps, then only levels >= 4
    [{"until_step": 20, "max_label": 2}, {"until_step": 60, "max_label": 4}, {}]   easy first

Within the admitted labels, prompts are drawn uniformly without replacement within an epoch of the
admitted set: one pool per label, the batch split over the pools by a multivariate hypergeometric
draw (exactly uniform over the union). O(B + L) per step for L distinct labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cdas.core.errors import InvalidArgumentError
from cdas.core.params import Checker, Param
from cdas.core.strategies.base import Arrays, FloatArray, IntArray, Request, Strategy, register
from cdas.core.validate import MAX_STEP, check_number, check_step, describe

if TYPE_CHECKING:
    from cdas.core.engine import RunView
    from cdas.core.space import PoolLike, RunSpace

MAX_LABELS = 4096
"""Distinct label values a curriculum run may hold (labels are levels, not scores)."""

_STAGE_KEYS = ("until_step", "min_label", "max_label")


def check_schedule(field: str, value: Any) -> list[dict[str, Any]]:
    """Normalize a schedule: a non-empty list of stages with increasing ``until_step``."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple) or not value:
        raise InvalidArgumentError(
            f"{field} is {describe(value)}; it must be a non-empty list of stages",
            field=field,
            value=describe(value),
        )
    stages: list[dict[str, Any]] = []
    previous = -1
    for pos, stage in enumerate(value):
        where = f"{field}[{pos}]"
        if not isinstance(stage, Mapping):
            raise InvalidArgumentError(
                f"{where} is {describe(stage)}; a stage is an object with until_step, min_label, "
                "max_label",
                field=where,
                value=describe(stage),
            )
        for key in stage:
            if key not in _STAGE_KEYS:
                raise InvalidArgumentError(
                    f"{where} has unknown key {key!r} (keys: {', '.join(_STAGE_KEYS)})",
                    field=f"{where}.{key}",
                    value=key,
                )
        until = stage.get("until_step")
        if until is None and pos != len(value) - 1:
            raise InvalidArgumentError(
                f"{where}.until_step is missing; only the last stage may run forever",
                field=f"{where}.until_step",
                value=None,
            )
        if until is not None:
            until = check_step(until, f"{where}.until_step")
            if until <= previous:
                raise InvalidArgumentError(
                    f"{where}.until_step {until} does not follow {previous}; stages must have "
                    "increasing until_step",
                    field=f"{where}.until_step",
                    value=until,
                )
            previous = until
        bounds = [
            None if stage.get(k) is None else check_number(f"{where}.{k}", stage[k])
            for k in ("min_label", "max_label")
        ]
        if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
            raise InvalidArgumentError(
                f"{where} admits no label: min_label {bounds[0]:g} > max_label {bounds[1]:g}",
                field=where,
                value=describe(stage),
            )
        stages.append({"until_step": until, "min_label": bounds[0], "max_label": bounds[1]})
    return stages


SCHEDULE_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {
            "until_step": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_STEP},
            "min_label": {"type": ["number", "null"]},
            "max_label": {"type": ["number", "null"]},
        },
        "additionalProperties": False,
    },
    "description": "stages in order; until_step increases from stage to stage, only the last "
    "stage may omit it (null: omitted), and a stage's min_label is at most its max_label",
}
"""``check_schedule``'s rules as JSON Schema; the description holds those across stages."""

DEFAULT_SCHEDULE = ({"until_step": 55}, {"min_label": 4})


@register
class Curriculum(Strategy):
    name = "curriculum"
    params = (
        Param(
            "schedule",
            check_schedule("schedule", list(DEFAULT_SCHEDULE)),
            Checker(check_schedule, SCHEDULE_SCHEMA),
            "stages of admitted labels: [{until_step, min_label, max_label}, ...]",
        ),
    )

    def __init__(self, params: dict[str, Any], seed: int, space: RunSpace) -> None:
        super().__init__(params, seed, space)
        self.stages: list[dict[str, Any]] = params["schedule"]

    @staticmethod
    def pool_name(label: float) -> str:
        return f"label:{float(label).hex()}"

    def labels_known(self) -> list[float]:
        """The distinct labels of the run's prompts, ascending."""
        return sorted(float.fromhex(name[6:]) for name in self.space.pool_names("label:"))

    def check_labels(
        self, labels: np.ndarray | None, count: int, id_of: Callable[[int], str]
    ) -> None:
        if count == 0:
            return
        missing = np.ones(count, dtype=bool) if labels is None else np.isnan(labels)
        if missing.any():
            first = id_of(int(np.flatnonzero(missing)[0]))
            raise InvalidArgumentError(
                f"prompt {first!r} has no label; the curriculum strategy needs a label for every "
                "prompt (labels: {id: number})",
                field="labels",
                value=first,
            )
        assert labels is not None
        distinct = set(self.labels_known()) | set(np.unique(labels).tolist())
        if len(distinct) > MAX_LABELS:
            raise InvalidArgumentError(
                f"{len(distinct)} distinct labels; the curriculum strategy takes at most "
                f"{MAX_LABELS} (labels are levels)",
                field="labels",
                value=len(distinct),
            )

    def stage(self, step: int) -> dict[str, Any]:
        for stage in self.stages:
            if stage["until_step"] is None or step < stage["until_step"]:
                return stage
        return self.stages[-1]

    def bounds(self, step: int) -> tuple[float, float]:
        """The label range the schedule admits at ``step``."""
        stage = self.stage(step)
        low = -np.inf if stage["min_label"] is None else stage["min_label"]
        high = np.inf if stage["max_label"] is None else stage["max_label"]
        return low, high

    def admitted(self, step: int) -> list[PoolLike]:
        """The pools of the labels the schedule admits at ``step``, by ascending label."""
        low, high = self.bounds(step)
        return [
            self.space.pool(self.pool_name(label))
            for label in self.labels_known()
            if low <= label <= high
        ]

    def check_request(
        self, view: RunView, step: int, round_: int, size: int, exclude: IntArray
    ) -> None:
        have = sum(pool.size for pool in self.admitted(step))
        if exclude.size:
            low, high = self.bounds(step)
            labels = view.labels(exclude)
            assert labels is not None
            have -= int(((labels >= low) & (labels <= high)).sum())
        if size > have:
            stage = self.stage(step)
            raise InvalidArgumentError(
                f"batch size {size} exceeds the {have} prompts the curriculum admits at step "
                f"{step} and has not issued in it (labels in [{stage['min_label']}, "
                f"{stage['max_label']}])",
                field="size",
                value=size,
            )

    def add(self, view: RunView, start: int, stop: int, labels: FloatArray | None) -> None:
        assert labels is not None
        idx = np.arange(start, stop, dtype=np.int64)
        order = np.argsort(labels, kind="stable")
        cuts = np.flatnonzero(np.diff(labels[order])) + 1
        for group in np.split(order, cuts):
            if group.size:
                self.space.pool(self.pool_name(float(labels[group[0]]))).add(idx[group])

    def select(self, view: RunView, request: Request) -> IntArray:
        pools = self.admitted(request.step)
        exclude, rng = request.exclude, request.rng
        available = np.array([p.available(exclude) for p in pools], dtype=np.int64)
        parts: list[IntArray] = []
        need = request.size
        if available.sum() < need:  # the admitted set's epoch ends: take the rest, start anew
            parts = [
                p.draw(int(a), rng, exclude=exclude) for p, a in zip(pools, available, strict=True)
            ]
            need -= int(available.sum())
            for p in pools:
                p.reset()
            exclude = np.concatenate([exclude, *parts])
            available = np.array([p.available(exclude) for p in pools], dtype=np.int64)
        counts = rng.multivariate_hypergeometric(available, need)
        parts += [p.draw(int(c), rng, exclude=exclude) for p, c in zip(pools, counts, strict=True)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def dump(self) -> Arrays:
        labels = self.labels_known()
        out: Arrays = {"pool_labels": np.array(labels, dtype=np.float64)}
        for pos, label in enumerate(labels):
            for key, value in self.space.pool(self.pool_name(label)).to_arrays().items():
                out[f"pool{pos}_{key}"] = value
        return out

    def load(self, view: RunView, core: Arrays, own: Arrays) -> None:
        for pos, label in enumerate(own["pool_labels"].tolist()):
            self.space.pool(self.pool_name(label)).load(
                {"items": own[f"pool{pos}_items"], "counters": own[f"pool{pos}_counters"]}
            )
