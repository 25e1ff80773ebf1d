"""One run held in process memory: the shared per-prompt state, the strategy's structures, the
per-step records, and the contract's semantics for batches, results and snapshots.

Every public method validates its whole input before it changes anything, so a rejected call
leaves the run exactly as it was. Callers serialize access with ``lock``.
"""

from __future__ import annotations

import heapq
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from cdas.core import snapshot as snapshot_format
from cdas.core.arrays import merge_sorted
from cdas.core.config import PromptSpec, RunConfig
from cdas.core.errors import ConflictError, InvalidArgumentError, PromptNotFoundError
from cdas.core.ids import PromptIds
from cdas.core.randomness import generator
from cdas.core.results import parse_results
from cdas.core.state import RunCore, histogram_edges
from cdas.core.steps import RoundRecord, StepRecord, StepStats
from cdas.core.strategies import Request, build
from cdas.core.validate import describe
from cdas.core.views import Batch, PromptInfo, ReportOutcome, RunInfo, RunState

IntArray = npt.NDArray[np.int64]

_COUNTERS = ("results", "duplicates", "rollouts", "batches")


class MemoryRun:
    """A run's complete state in memory; see the module docstring."""

    def __init__(self, run_id: str, config: RunConfig, fingerprint: str, retain_steps: int) -> None:
        self.run_id = run_id
        self.config = config
        self.fingerprint = fingerprint
        self.retain_steps = retain_steps
        self.lock = threading.RLock()
        self.ids = PromptIds()
        self.core = RunCore()
        self.strategy = build(config.strategy, config.params, config.seed)
        self.threshold = float(config.params["threshold"])
        self.records: dict[int, StepRecord] = {}
        self._record_steps: list[int] = []  # min-heap of the retained steps
        self.stats: dict[int, StepStats] = {}
        self.max_step = -1
        self.counts = dict.fromkeys(_COUNTERS, 0)

    # ------------------------------------------------------------------ prompts
    def add_prompts(self, prompts: PromptSpec) -> int:
        """Register prompts (validated first, all or nothing); returns the run's new size."""
        m = prompts.size
        start = len(self.ids)
        ids = prompts.ids
        if ids is None and self.ids.explicit:  # a count after explicit ids: spell the ids out,
            ids = [str(start + k) for k in range(m)]  # they may collide with explicit ones
        if ids is not None:
            self.ids.check_new(ids, "prompts.ids")
        labels = self._labels_of(prompts, start)
        if ids is not None:
            names = ids

            def id_of(k: int) -> str:
                return names[k]

        else:

            def id_of(k: int) -> str:
                return str(start + k)

        self.strategy.check_labels(labels, m, id_of)
        if m == 0:
            return self.core.n
        if ids is not None:
            self.ids.add(ids)
        else:
            self.ids.add_count(m)
        self.core.grow(m, labels)
        self.strategy.add(self.core, start, start + m)
        return self.core.n

    def _labels_of(self, prompts: PromptSpec, start: int) -> npt.NDArray[np.float64] | None:
        if not prompts.labels:
            return None
        out = np.full(prompts.size, np.nan)
        if prompts.ids is not None:
            position = {prompt_id: k for k, prompt_id in enumerate(prompts.ids)}
        for key, value in prompts.labels.items():
            if prompts.ids is not None:
                k = position.get(key, -1)
            else:
                k = int(key) - start if isinstance(key, str) and key.isdigit() else -1
                k = k if 0 <= k < prompts.size and str(start + k) == key else -1
            if k < 0:
                raise InvalidArgumentError(
                    f"labels names {describe(key)}, which is not among the prompts of this call",
                    field="labels",
                    value=describe(key),
                )
            out[k] = value
        return out

    # ------------------------------------------------------------------ steps
    def _check_window(self, step: int) -> None:
        oldest = self.max_step - self.retain_steps + 1
        if step < oldest:
            raise ConflictError(
                f"step {step} is older than the retained window (steps >= {oldest}, the latest "
                f"{self.retain_steps}); its batches and applied results are no longer kept",
                step=step,
                oldest=oldest,
            )

    def _advance(self, step: int) -> None:
        if step <= self.max_step:
            return
        self.max_step = step
        oldest = step - self.retain_steps + 1
        while self._record_steps and self._record_steps[0] < oldest:
            self.records.pop(heapq.heappop(self._record_steps), None)

    def _record(self, step: int) -> StepRecord:
        record = self.records.get(step)
        if record is None:
            record = self.records[step] = StepRecord()
            heapq.heappush(self._record_steps, step)
        return record

    def _stats(self, step: int) -> StepStats:
        stats = self.stats.get(step)
        if stats is None:
            stats = self.stats[step] = StepStats(step, self.core.competence)
        return stats

    # ------------------------------------------------------------------ batches
    def next_batch(self, step: int, size: int, round_: int) -> Batch:
        record = self.records.get(step)
        if record is not None and round_ < len(record.rounds):
            issued = record.rounds[round_]
            if issued.ids.size != size:
                raise ConflictError(
                    f"step {step} round {round_} was issued with size {issued.ids.size}; it cannot "
                    f"be asked again with size {size}",
                    step=step,
                    round=round_,
                    size=int(issued.ids.size),
                )
            return self._batch(step, round_, issued)
        self._check_window(step)
        rounds_done = 0 if record is None else len(record.rounds)
        if round_ > rounds_done:
            raise ConflictError(
                f"round {round_} of step {step} was asked before round {rounds_done}",
                step=step,
                round=round_,
            )
        n = self.core.n
        if size > n:
            raise InvalidArgumentError(
                f"batch size {size} is larger than the run ({n} prompts)", field="size", value=size
            )
        exclude = np.zeros(0, dtype=np.int64) if record is None else record.issued()
        if size > n - exclude.size:
            raise InvalidArgumentError(
                f"batch size {size} exceeds the {n - exclude.size} prompts not yet issued in step "
                f"{step}",
                field="size",
                value=size,
            )
        self.strategy.check_request(self.core, step, round_, size)
        rng = generator(self.config.seed, step, round_)
        idx = self.strategy.select(self.core, Request(step, round_, size, exclude, rng))
        if idx.size != size:
            raise RuntimeError(
                f"strategy {self.config.strategy} chose {idx.size} of {size} prompts"
            )
        issued = RoundRecord(idx.astype(np.int32), self.core.competence)
        self._record(step).rounds.append(issued)
        stats = self._stats(step)
        stats.batch_size += size
        if stats.results == 0:
            stats.competence = issued.competence
        self.counts["batches"] += 1
        self._advance(step)
        return self._batch(step, round_, issued)

    def _batch(self, step: int, round_: int, issued: RoundRecord) -> Batch:
        return Batch(self.run_id, step, round_, self.ids.ids(issued.ids), issued.competence)

    # ------------------------------------------------------------------ results
    def report_results(self, step: int, results: list[Any]) -> ReportOutcome:
        parsed = parse_results(results, self.threshold)
        idx = self.ids.lookup(parsed.prompt_ids)
        unknown = np.flatnonzero(idx < 0)
        if unknown.size:
            first = parsed.prompt_ids[int(unknown[0])]
            raise InvalidArgumentError(
                f"results name {unknown.size} unknown prompt id(s), first {first!r} "
                f"(results[{int(unknown[0])}])",
                field=f"results[{int(unknown[0])}].prompt_id",
                value=first,
            )
        self._check_window(step)
        record = self.records.get(step)
        fresh = np.ones(idx.size, dtype=np.bool_)
        competence = np.full(idx.size, self.core.competence)
        if record is not None:
            fresh = ~np.isin(idx, record.applied)
            for issued in record.rounds:
                competence[issued.contains(idx)] = issued.competence
        applied = int(fresh.sum())
        duplicates = idx.size - applied
        if applied:
            sel = idx[fresh]
            update = self.core.apply(
                sel, parsed.pass_rate[fresh], parsed.total[fresh], competence[fresh], step
            )
            self.strategy.observe(self.core, update)
            record = self._record(step)
            record.applied = merge_sorted(record.applied, sel.astype(np.int32))
            stats = self._stats(step)
            stats.results += applied
            stats.pass_sum += float(parsed.pass_rate[fresh].sum())
            stats.zero_gradient += int(parsed.zero_gradient[fresh].sum())
            rollouts = int(parsed.total[fresh].sum())
            stats.rollouts += rollouts
            stats.competence = self.core.competence
            self.counts["results"] += applied
            self.counts["rollouts"] += rollouts
            self._advance(step)
        self.counts["duplicates"] += duplicates
        return ReportOutcome(applied, duplicates, self.core.competence)

    # ------------------------------------------------------------------ reads
    def get_prompt(self, prompt_id: str) -> PromptInfo:
        k = self.ids.index(prompt_id)
        if k < 0:
            raise PromptNotFoundError(self.run_id, prompt_id)
        core = self.core
        updates = int(core.t[k])
        labels = core.labels
        label = None if labels is None or np.isnan(labels[k]) else float(labels[k])
        return PromptInfo(
            prompt_id=prompt_id,
            difficulty=float(core.d[k]),
            updates=updates,
            last_pass_rate=float(core.last_pass_rate[k]) if updates else None,
            last_step=int(core.last_step[k]) if updates else None,
            label=label,
        )

    def info(self, created: bool = False) -> RunInfo:
        return RunInfo(
            run_id=self.run_id,
            strategy=self.config.strategy,
            params=self.config.params,
            seed=self.config.seed,
            size=self.core.n,
            step=self.max_step if self.max_step >= 0 else None,
            competence=self.core.competence,
            seen=self.core.seen,
            created=created,
            **self.counts,
        )

    def state(self) -> RunState:
        return RunState(
            run_id=self.run_id,
            strategy=self.config.strategy,
            step=self.max_step if self.max_step >= 0 else None,
            size=self.core.n,
            seen=self.core.seen,
            competence=self.core.competence,
            histogram_edges=histogram_edges(),
            histogram_counts=self.core.hist.tolist(),
            history=[self.stats[s].summary() for s in sorted(self.stats)],
        )

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> bytes:
        implicit, buf, off = self.ids.to_arrays()
        arrays: dict[str, npt.NDArray[Any]] = {"ids_bytes": buf, "ids_offsets": off}
        arrays.update({f"core_{k}": v for k, v in self.core.arrays().items()})
        arrays.update({f"strategy_{k}": v for k, v in self.strategy.arrays().items()})
        steps = []
        for step in sorted(self.records):
            record = self.records[step]
            for r, issued in enumerate(record.rounds):
                arrays[f"step{step}_round{r}"] = issued.ids
            arrays[f"step{step}_applied"] = record.applied
            steps.append([step, [issued.competence for issued in record.rounds]])
        meta = {
            "run_id": self.run_id,
            "config": self.config.to_dict(),
            "fingerprint": self.fingerprint,
            "implicit_ids": implicit,
            "max_step": self.max_step,
            "counts": self.counts,
            "records": steps,
            "stats": [self.stats[s].to_list() for s in sorted(self.stats)],
        }
        return snapshot_format.encode(meta, arrays)

    @classmethod
    def from_snapshot(cls, run_id: str, data: bytes, retain_steps: int) -> MemoryRun:
        """A run rebuilt from ``snapshot()`` bytes; raises ``InvalidArgumentError`` for bad ones."""
        meta, arrays = snapshot_format.decode(data)
        try:
            config = RunConfig.make(
                meta["config"]["strategy"], meta["config"]["params"], meta["config"]["seed"]
            )
            run = cls(run_id, config, str(meta["fingerprint"]), retain_steps)
            run.ids = PromptIds.from_arrays(
                int(meta["implicit_ids"]), arrays["ids_bytes"], arrays["ids_offsets"]
            )
            run.core = RunCore.from_arrays(
                {k[5:]: v for k, v in arrays.items() if k.startswith("core_")}
            )
            if len(run.ids) != run.core.n:
                raise ValueError(f"{len(run.ids)} ids for {run.core.n} prompts")
            run.strategy.restore(
                run.core, {k[9:]: v for k, v in arrays.items() if k.startswith("strategy_")}
            )
            run.max_step = int(meta["max_step"])
            run.counts = {k: int(meta["counts"][k]) for k in _COUNTERS}
            for step, competences in meta["records"]:
                record = run._record(int(step))
                for r, comp in enumerate(competences):
                    record.rounds.append(
                        RoundRecord(arrays[f"step{step}_round{r}"].astype(np.int32), float(comp))
                    )
                record.applied = arrays[f"step{step}_applied"].astype(np.int32)
            for row in meta["stats"]:
                stats = StepStats.from_list(row)
                run.stats[stats.step] = stats
        except InvalidArgumentError:
            raise
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InvalidArgumentError(
                f"snapshot is damaged or incomplete ({type(exc).__name__}: {exc})",
                field="snapshot",
                value=len(data),
            ) from exc
        return run
