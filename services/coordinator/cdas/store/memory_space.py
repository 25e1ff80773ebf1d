"""The memory store's ``RunSpace``: one run's state as numpy structures in process memory.

Structures are created on first use and live as long as the run; an operation mutates them in
place (the store's per-run lock makes each operation atomic).
"""

from __future__ import annotations

import heapq

from cdas.core.config import RunConfig
from cdas.core.ids import PromptIds
from cdas.core.space import RunScalars
from cdas.core.steps import StepRecord, StepStats
from cdas.core.structures.arrays import NumpyCoreArrays, NumpyFloatArray
from cdas.core.structures.ordered import OrderedIndex
from cdas.core.structures.pool import UniformPool
from cdas.core.structures.sumtree import SumTree


class MemoryStepStore:
    """Step records in a dict (with a min-heap of their steps for eviction), stats in another."""

    def __init__(self) -> None:
        self._records: dict[int, StepRecord] = {}
        self._heap: list[int] = []
        self._stats: dict[int, StepStats] = {}

    def record(self, step: int) -> StepRecord | None:
        return self._records.get(step)

    def put_record(self, step: int, record: StepRecord) -> None:
        if step not in self._records:
            heapq.heappush(self._heap, step)
        self._records[step] = record

    def evict_below(self, step: int) -> None:
        while self._heap and self._heap[0] < step:
            self._records.pop(heapq.heappop(self._heap), None)

    def records(self) -> dict[int, StepRecord]:
        return dict(self._records)

    def stats(self, step: int) -> StepStats | None:
        return self._stats.get(step)

    def put_stats(self, stats: StepStats) -> None:
        self._stats[stats.step] = stats

    def all_stats(self) -> list[StepStats]:
        return [self._stats[s] for s in sorted(self._stats)]


class MemorySpace:
    """A run's state in memory; see the module docstring."""

    def __init__(self, run_id: str, config: RunConfig, fingerprint: str) -> None:
        self.run_id = run_id
        self.config = config
        self.fingerprint = fingerprint
        self.scalars = RunScalars()
        self.ids = PromptIds()
        self.core = NumpyCoreArrays()
        self.steps = MemoryStepStore()
        self._indexes: dict[str, OrderedIndex] = {}
        self._pools: dict[str, UniformPool] = {}
        self._trees: dict[str, SumTree] = {}
        self._floats: dict[str, NumpyFloatArray] = {}

    def ordered_index(self, name: str) -> OrderedIndex:
        return self._indexes.setdefault(name, OrderedIndex())

    def pool(self, name: str) -> UniformPool:
        return self._pools.setdefault(name, UniformPool())

    def pool_names(self, prefix: str) -> list[str]:
        return sorted(name for name in self._pools if name.startswith(prefix))

    def sum_tree(self, name: str) -> SumTree:
        return self._trees.setdefault(name, SumTree())

    def float_array(self, name: str) -> NumpyFloatArray:
        return self._floats.setdefault(name, NumpyFloatArray())
