"""Where one run's state lives, as the engine and the strategies see it.

The run semantics (``cdas.core.engine``) and the strategies are written once, against these
protocols; each store supplies an implementation: ``MemorySpace`` keeps numpy structures in process
memory, ``RedisSpace`` reads what an operation needs from Redis in a few batched round trips,
buffers every write, and commits them in one atomic script. Because both stores run the same
Python code on the same values, they give bit-identical answers.

A space holds:

* ``config`` and ``fingerprint``: fixed when the run is created;
* ``scalars``: the run's counters, the exact competence sum, the difficulty histogram;
* ``ids``: the prompt id <-> index map;
* ``core``: the per-prompt arrays every strategy shares (D, t, last pass rate, last step, label);
* ``steps``: the retained per-step records (issued batches, applied results) and the statistics;
* named structures for the strategies: ordered indexes, uniform pools, sum trees, float arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from cdas.core.config import RunConfig
from cdas.core.ids import PromptIds
from cdas.core.steps import StepRecord, StepStats

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]
Arrays = dict[str, npt.NDArray[Any]]

HISTOGRAM_BINS = 40
"""The difficulty histogram has 40 equal bins over [-1, 1] (width 0.05)."""

COUNTERS = ("results", "duplicates", "rollouts", "batches")


@dataclass
class RunScalars:
    """A run's scalar state; an operation reads it whole and writes it back whole."""

    n: int = 0
    sum_fixed: int = 0  # sum of round(D * 2**50) over all prompts (see cdas.core.difficulty)
    seen: int = 0  # prompts with at least one update
    max_step: int = -1
    results: int = 0
    duplicates: int = 0
    rollouts: int = 0
    batches: int = 0
    hist: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)

    def copy(self) -> RunScalars:
        return replace(self, hist=list(self.hist))


@dataclass(frozen=True, slots=True)
class CoreRows:
    """The shared per-prompt values of some prompts."""

    d: FloatArray
    t: npt.NDArray[np.int32]
    last_pass_rate: FloatArray  # NaN: no results yet
    last_step: IntArray  # -1: no results yet


class CoreArrays(Protocol):
    def gather(self, idx: IntArray) -> CoreRows: ...

    def scatter(self, idx: IntArray, rows: CoreRows) -> None: ...

    def labels(self, idx: IntArray) -> FloatArray | None:
        """Labels of ``idx`` (NaN: none), or None when the run has no labels at all."""
        ...

    def gather_range(self, start: int, stop: int) -> tuple[CoreRows, FloatArray | None]:
        """The rows of prompts start..stop-1 and their labels (as ``labels``), read as one
        contiguous slice (an export page): O(stop - start), whatever the run's size."""
        ...

    def append(self, n: int, m: int, labels: FloatArray | None) -> None:
        """Add prompts n..n+m-1: D = 0, t = 0, no results; optional labels (NaN: none)."""
        ...

    def dump(self, n: int) -> Arrays:
        """The full arrays d, t, last_pass_rate, last_step (and labels) of prompts 0..n-1."""
        ...

    def load(self, arrays: Arrays) -> None:
        """Replace everything by ``dump``'s arrays."""
        ...


class IdTable(Protocol):
    @property
    def explicit(self) -> int: ...

    def __len__(self) -> int: ...

    def check_new(self, ids: Sequence[str], field: str = "ids") -> None: ...

    def add(self, ids: Sequence[str]) -> None: ...

    def add_count(self, count: int) -> None: ...

    def lookup(self, ids: Sequence[str], canonical: IntArray | None = None) -> IntArray: ...

    def ids(self, idx: npt.NDArray[np.integer[Any]]) -> list[str]: ...

    def to_arrays(self) -> tuple[int, npt.NDArray[np.uint8], IntArray]: ...

    def load(self, other: PromptIds) -> None:
        """Replace everything by ``other``'s ids (a restore)."""
        ...


class StepStore(Protocol):
    def record(self, step: int) -> StepRecord | None: ...

    def put_record(self, step: int, record: StepRecord) -> None: ...

    def evict_below(self, step: int) -> None:
        """Forget the records of steps below ``step`` (statistics stay)."""
        ...

    def records(self) -> dict[int, StepRecord]: ...

    def stats(self, step: int) -> StepStats | None: ...

    def put_stats(self, stats: StepStats) -> None: ...

    def all_stats(self) -> list[StepStats]:
        """Every step's statistics, by step."""
        ...


class OrderedIndexLike(Protocol):
    def insert(self, idx: IntArray, z: ComplexArray) -> None: ...

    def update(
        self,
        remove_idx: IntArray,
        remove_z: ComplexArray,
        insert_idx: IntArray,
        insert_z: ComplexArray,
    ) -> None: ...

    def nearest(
        self, c: float, below: int, above: int, exclude: IntArray | None = None
    ) -> IntArray: ...


class PoolLike(Protocol):
    @property
    def size(self) -> int: ...

    @property
    def live(self) -> int: ...

    def add(self, idx: IntArray) -> None: ...

    def discard(self, idx: IntArray) -> None: ...

    def contains(self, idx: IntArray) -> npt.NDArray[np.bool_]: ...

    def remove(self, idx: IntArray) -> None: ...

    def reset(self) -> None: ...

    def clear(self) -> None: ...

    def draw(
        self,
        k: int,
        rng: np.random.Generator,
        exclude: IntArray | None = None,
        epochs: bool = False,
    ) -> IntArray: ...

    def available(self, exclude: IntArray | None = None) -> int: ...

    def to_arrays(self) -> Arrays: ...

    def load(self, arrays: Arrays) -> None: ...


class SumTreeLike(Protocol):
    @property
    def size(self) -> int: ...

    def grow(self, m: int, weights: FloatArray) -> None: ...

    def set(self, idx: IntArray, weights: FloatArray) -> None: ...

    def sample(
        self, k: int, rng: np.random.Generator, exclude: IntArray | None = None
    ) -> IntArray: ...


class FloatArrayLike(Protocol):
    def get(self, idx: IntArray) -> FloatArray: ...

    def set(self, idx: IntArray, values: FloatArray) -> None: ...

    def append(self, values: FloatArray) -> None: ...

    def dump(self) -> FloatArray: ...


class RunSpace(Protocol):
    scalars: RunScalars

    @property
    def run_id(self) -> str: ...

    @property
    def config(self) -> RunConfig: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def ids(self) -> IdTable: ...

    @property
    def core(self) -> CoreArrays: ...

    @property
    def steps(self) -> StepStore: ...

    def ordered_index(self, name: str) -> OrderedIndexLike: ...

    def pool(self, name: str) -> PoolLike: ...

    def pool_names(self, prefix: str) -> list[str]:
        """Names of the existing pools that start with ``prefix``."""
        ...

    def sum_tree(self, name: str) -> SumTreeLike: ...

    def float_array(self, name: str) -> FloatArrayLike: ...
