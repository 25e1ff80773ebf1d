"""The strategy interface: what every sampling strategy implements, and the registry of them.

A strategy decides which prompts go into a batch. It sees the run's shared state (``RunCore``: D, t,
C, last pass rates, labels) and keeps its own structures (an ordered index, a pool, a sum tree,
posteriors), which it rebuilds from the shared state or restores from a snapshot. Four hooks::

    add(core, start, stop)      prompts [start, stop) were registered (D = 0, t = 0)
    select(core, request)       the prompt indexes of a new batch (distinct, none excluded)
    observe(core, update)       results were applied to the shared state
    arrays() / restore(...)     its own state for snapshots

plus ``check_request`` (reject an impossible request before anything changes) and ``check_labels``.
A new strategy is one new module: subclass ``Strategy``, set ``name`` and ``params``, implement the
hooks, and import the module in ``cdas.core.strategies``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from cdas.core.errors import InvalidArgumentError
from cdas.core.params import THRESHOLD, Param, normalize
from cdas.core.state import RunCore, Update

IntArray = npt.NDArray[np.int64]
Arrays = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True, slots=True)
class Request:
    """One batch request as a strategy sees it.

    ``exclude`` holds the prompts already issued in earlier rounds of the same step (a step never
    repeats a prompt); ``rng`` is the stream of this (seed, step, round), so equal inputs give
    equal batches.
    """

    step: int
    round: int
    size: int
    exclude: IntArray
    rng: np.random.Generator


class Strategy(ABC):
    """Base class of the sampling strategies; see the module docstring."""

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, params: dict[str, Any], seed: int) -> None:
        self.config = params
        self.seed = seed

    @classmethod
    def declared(cls) -> tuple[Param, ...]:
        """Every parameter the strategy takes, the common ``threshold`` included."""
        return (*cls.params, THRESHOLD)

    def check_labels(
        self, labels: npt.NDArray[np.float64] | None, count: int, id_of: Callable[[int], str]
    ) -> None:
        """Reject ``count`` new prompts whose labels (NaN: none; None: no labels at all) the
        strategy cannot use, before they are added; ``id_of(k)`` names the k-th new prompt."""

    def check_request(self, core: RunCore, step: int, round_: int, size: int) -> None:
        """Reject a batch request the strategy cannot serve, before anything changes."""

    @abstractmethod
    def add(self, core: RunCore, start: int, stop: int) -> None: ...

    @abstractmethod
    def select(self, core: RunCore, request: Request) -> IntArray: ...

    def observe(self, core: RunCore, update: Update) -> None:
        """React to applied results (default: nothing beyond the shared state)."""

    def arrays(self) -> Arrays:
        """The strategy's own state for a snapshot (default: none; it is derived)."""
        return {}

    def restore(self, core: RunCore, arrays: Arrays) -> None:
        """Rebuild from the shared state and ``arrays()`` of a snapshot (default: re-add all)."""
        self.add(core, 0, core.n)


REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a strategy to the registry under its ``name``."""
    REGISTRY[cls.name] = cls
    return cls


def strategy_class(name: Any) -> type[Strategy]:
    if not isinstance(name, str) or name not in REGISTRY:
        raise InvalidArgumentError(
            f"unknown strategy {name!r}; strategies are {', '.join(sorted(REGISTRY))}",
            field="strategy",
            value=repr(name),
        )
    return REGISTRY[name]


def normalized_params(name: str, params: Any) -> dict[str, Any]:
    """The strategy's full parameter dict for client-given ``params`` (defaults filled in)."""
    return normalize(name, strategy_class(name).declared(), params)


def build(name: str, params: dict[str, Any], seed: int) -> Strategy:
    return strategy_class(name)(params, seed)
