"""The strategy interface: what every sampling strategy implements, and the registry of them.

A strategy decides which prompts go into a batch. It reads the run's shared state through a
``RunView`` (size, competence, per-prompt D, t, last pass rate, labels) and keeps its own structures
(an ordered index, a pool, a sum tree, float arrays), which it obtains by name from the run's space,
so the same strategy code runs on every store. Hooks::

    add(view, start, stop, labels)   prompts [start, stop) were registered (D = 0, t = 0)
    select(view, request)            the prompt indexes of a new batch (distinct, none excluded)
    observe(view, update)            results were applied to the shared state
    dump() / load(view, core, own)   its own state for snapshots, and the rebuild from one

plus ``check_request`` (reject an impossible request before anything changes) and
``check_labels``, and two values the engine reads: ``min_weight`` (the floor of the difficulty
update's weight) and ``retired_count()`` (prompts kept out of selection, for the run's state).
A new strategy is one new module: subclass ``Strategy``, set ``name`` and
``params``, implement the hooks, and import the module in ``cdas.core.strategies``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from cdas.core.errors import InvalidArgumentError
from cdas.core.params import THRESHOLD, Param, normalize

if TYPE_CHECKING:
    from cdas.core.engine import RunView
    from cdas.core.space import RunSpace

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
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


@dataclass(frozen=True, slots=True)
class Update:
    """What one application of results changed, handed to the strategy's ``observe``."""

    idx: IntArray
    old_d: FloatArray
    new_d: FloatArray
    old_t: npt.NDArray[np.int32]
    new_t: npt.NDArray[np.int32]
    pass_rate: FloatArray
    total: IntArray
    step: int


class Strategy(ABC):
    """Base class of the sampling strategies; see the module docstring."""

    name: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, params: dict[str, Any], seed: int, space: RunSpace) -> None:
        self.config = params
        self.seed = seed
        self.space = space
        self.min_weight = 0.0
        """Floor w0 of the weight of the run's difficulty updates, ``D <- D + max(1/t, w0)
        (d - D)`` (``cdas.core.difficulty.updated_difficulty``); 0 (the paper's running mean)
        unless the strategy takes it from a param (CDAS's ``min_weight``)."""

    def retired_count(self) -> int:
        """Prompts the strategy currently keeps out of its selection (CDAS's retirement), for
        the run's state and metrics; 0 by default. O(1)."""
        return 0

    @classmethod
    def declared(cls) -> tuple[Param, ...]:
        """Every parameter the strategy takes, the common ``threshold`` included."""
        return (*cls.params, THRESHOLD)

    def check_labels(
        self, labels: FloatArray | None, count: int, id_of: Callable[[int], str]
    ) -> None:
        """Reject ``count`` new prompts whose labels (NaN: none; None: no labels at all) the
        strategy cannot use, before they are added; ``id_of(k)`` names the k-th new prompt."""

    def check_request(
        self, view: RunView, step: int, round_: int, size: int, exclude: IntArray
    ) -> None:
        """Reject a batch request the strategy cannot serve, before anything changes
        (``exclude``: the prompts issued in the step's earlier rounds)."""

    @abstractmethod
    def add(self, view: RunView, start: int, stop: int, labels: FloatArray | None) -> None: ...

    @abstractmethod
    def select(self, view: RunView, request: Request) -> IntArray: ...

    def observe(self, view: RunView, update: Update) -> None:
        """React to applied results (default: nothing beyond the shared state)."""

    def dump(self) -> Arrays:
        """The strategy's own state for a snapshot (default: none; it is derived)."""
        return {}

    def load(self, view: RunView, core: Arrays, own: Arrays) -> None:
        """Rebuild in a fresh space from a snapshot: the shared arrays (``core``: d, t,
        last_pass_rate, last_step, labels) and ``dump()``'s arrays (``own``)."""
        self.add(view, 0, view.n, core.get("labels"))


REGISTRY: dict[str, type[Strategy]] = {}

DEFAULT_STRATEGY = "cdas"
"""The strategy of a run created without one."""


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


def build(name: str, params: dict[str, Any], seed: int, space: RunSpace) -> Strategy:
    return strategy_class(name)(params, seed, space)
