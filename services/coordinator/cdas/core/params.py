"""Declared strategy parameters: each strategy lists its ``Param``s; ``normalize`` fills defaults,
rejects unknown names and checks every value, with a message naming the bad one.

A run's config is its strategy, its normalized params and its seed; two ``put_run`` calls describe
the same run exactly when these are equal.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdas.core.errors import InvalidArgumentError
from cdas.core.validate import check_int, check_number, describe


@dataclass(frozen=True, slots=True)
class Checker:
    """A parameter's check with the JSON Schema of the values it accepts.

    ``check(field, value)`` returns the normalized value or raises ``InvalidArgumentError``;
    ``schema`` says the same rule as data (the REST door's OpenAPI document states it), so the
    bounds are written once. Rules a JSON Schema cannot say go in its ``description``."""

    check: Callable[[str, Any], Any]
    schema: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, field: str, value: Any) -> Any:
        return self.check(field, value)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its name, default, and a checker returning the normalized value.

    The checker receives the qualified field name (``params.warmup``) and the raw value, and raises
    ``InvalidArgumentError`` when the value is unacceptable.
    """

    name: str
    default: Any
    check: Callable[[str, Any], Any]
    doc: str

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the accepted values (a ``Checker``'s; else any value), with the
        doc as its description and the default."""
        known = self.check.schema if isinstance(self.check, Checker) else {}
        said = "; ".join(filter(None, (self.doc, known.get("description"))))
        return {**known, "description": said, "default": self.default}


def _boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(
            f"{field} is {describe(value)}; it must be true or false", field=field, value=value
        )
    return value


boolean = Checker(_boolean, {"type": "boolean"})


def number(low: float, high: float) -> Checker:
    """Finite numbers in [low, high] (integers included)."""

    def check(field: str, value: Any) -> float:
        return check_number(field, value, low, high)

    return Checker(check, {"type": "number", "minimum": low, "maximum": high})


def integer(low: int, high: int) -> Checker:
    """Integers in [low, high] (``true`` and ``2.0`` are not integers here)."""

    def check(field: str, value: Any) -> int:
        return check_int(field, value, low, high)

    return Checker(check, {"type": "integer", "minimum": low, "maximum": high})


THRESHOLD = Param(
    "threshold",
    0.5,
    number(-1e300, 1e300),
    "a rollout whose reward exceeds it counts as correct (for results given as rewards)",
)
"""Taken by every strategy."""


def normalize(strategy: str, declared: tuple[Param, ...], params: Any) -> dict[str, Any]:
    """The full parameter dict (defaults filled in) for ``params`` given by a client."""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidArgumentError(
            f"params is {describe(params)}; it must be an object", field="params", value=params
        )
    by_name = {p.name: p for p in declared}
    for name in params:
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise InvalidArgumentError(
                f"strategy {strategy!r} has no parameter {name!r} (its parameters: {known})",
                field=f"params.{name}",
                value=name,
            )
    return {
        p.name: p.check(f"params.{p.name}", params[p.name])
        if p.name in params
        else copy.deepcopy(p.default)
        for p in declared
    }
