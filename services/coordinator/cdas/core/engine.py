"""The run semantics of the contract, written once for every store.

``RunEngine`` implements what a run does with each call (``shared/API.md``, ``shared/CDAS.md``) over
a ``RunSpace``: registering prompts, issuing batches (idempotent per (step, round), never repeating
a prompt within a step), applying results (each (step, prompt) at most once, with the competence
the batch was issued with), the reads, and snapshots. Every method validates its whole input
before it changes anything, so a rejected call leaves the run as it was; the store makes the
changes of an accepted call atomic (the memory store by a lock, Redis by one commit script).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cdas.core import snapshot as snapshot_format
from cdas.core.arrays import merge_sorted
from cdas.core.config import PromptSpec, RunConfig
from cdas.core.difficulty import competence, fixed_sum, updated_difficulty
from cdas.core.errors import ConflictError, InvalidArgumentError, PromptNotFoundError
from cdas.core.ids import PromptIds
from cdas.core.randomness import generator
from cdas.core.results import ParsedResults, parse_results
from cdas.core.space import (
    COUNTERS,
    HISTOGRAM_BINS,
    Arrays,
    CoreRows,
    FloatArray,
    IntArray,
    RunScalars,
    RunSpace,
)
from cdas.core.steps import RoundRecord, StepRecord, StepStats
from cdas.core.strategies import Request, Strategy, Update, build
from cdas.core.validate import describe
from cdas.core.views import (
    Advance,
    AppliedGroups,
    Batch,
    PromptColumns,
    PromptInfo,
    PromptPage,
    ReportOutcome,
    RunInfo,
    RunState,
)


def histogram_bins(d: FloatArray) -> IntArray:
    """Bin of each difficulty: 40 equal bins over [-1, 1], the last one closed."""
    return np.minimum(((d + 1.0) * (HISTOGRAM_BINS / 2.0)).astype(np.int64), HISTOGRAM_BINS - 1)


def histogram_edges() -> list[float]:
    return [float(x) for x in np.linspace(-1.0, 1.0, HISTOGRAM_BINS + 1)]


class RunView:
    """What a strategy may read of the shared state: size, competence, per-prompt values."""

    def __init__(self, space: RunSpace) -> None:
        self._space = space

    @property
    def n(self) -> int:
        return self._space.scalars.n

    @property
    def competence(self) -> float:
        return competence(self._space.scalars.sum_fixed, self._space.scalars.n)

    def rows(self, idx: IntArray) -> CoreRows:
        return self._space.core.gather(idx)

    def labels(self, idx: IntArray) -> FloatArray | None:
        return self._space.core.labels(idx)


class RunEngine:
    """The contract's semantics over one run's space; see the module docstring."""

    def __init__(self, space: RunSpace, retain_steps: int) -> None:
        self.space = space
        self.retain_steps = retain_steps
        self.view = RunView(space)
        config = space.config
        self.strategy: Strategy = build(config.strategy, config.params, config.seed, space)
        self.threshold = float(config.params["threshold"])

    @property
    def scalars(self) -> RunScalars:
        return self.space.scalars

    # ------------------------------------------------------------------ prompts
    def add_prompts(self, prompts: PromptSpec) -> int:
        """Register prompts (validated first, all or nothing); returns the run's new size."""
        space, m = self.space, prompts.size
        start = len(space.ids)
        ids = prompts.ids
        if ids is None and space.ids.explicit:  # a count after explicit ids: spell the ids out,
            ids = [str(start + k) for k in range(m)]  # they may collide with explicit ones
        if ids is not None:
            space.ids.check_new(ids, "prompts.ids")
        labels = _labels_of(prompts, start)
        if ids is not None:
            names = ids

            def id_of(k: int) -> str:
                return names[k]

        else:

            def id_of(k: int) -> str:
                return str(start + k)

        self.strategy.check_labels(labels, m, id_of)
        if m == 0:
            return self.scalars.n
        if ids is not None:
            space.ids.add(ids)
        else:
            space.ids.add_count(m)
        space.core.append(start, m, labels)
        self.scalars.n = start + m
        self.strategy.add(self.view, start, start + m, labels)
        return self.scalars.n

    # ------------------------------------------------------------------ steps
    def _check_window(self, step: int) -> None:
        oldest = self.scalars.max_step - self.retain_steps + 1
        if step < oldest:
            raise ConflictError(
                f"step {step} is older than the retained window (steps >= {oldest}, the latest "
                f"{self.retain_steps}); its batches and applied results are no longer kept",
                step=step,
                oldest=oldest,
            )

    def _advance(self, step: int) -> None:
        if step > self.scalars.max_step:
            self.scalars.max_step = step
            self.space.steps.evict_below(step - self.retain_steps + 1)

    def _stats(self, step: int) -> StepStats:
        stats = self.space.steps.stats(step)
        return stats if stats is not None else StepStats(step, self.view.competence)

    # ------------------------------------------------------------------ batches
    def next_batch(self, step: int, size: int, round_: int) -> Batch:
        record, issued, exclude = self.check_batch(step, size, round_)
        if issued is not None:
            return self._batch(step, round_, issued)
        rng = generator(self.space.config.seed, step, round_)
        idx = self.strategy.select(self.view, Request(step, round_, size, exclude, rng))
        if idx.size != size:
            raise RuntimeError(
                f"strategy {self.space.config.strategy} chose {idx.size} of {size} prompts"
            )
        issued = RoundRecord(idx.astype(np.int32), self.view.competence)
        record = record if record is not None else StepRecord()
        record.rounds.append(issued)
        self.space.steps.put_record(step, record)
        stats = self._stats(step)
        stats.batch_size += size
        if stats.results == 0:
            stats.competence = issued.competence
        self.space.steps.put_stats(stats)
        self.scalars.batches += 1
        self._advance(step)
        return self._batch(step, round_, issued)

    def check_batch(
        self, step: int, size: int, round_: int
    ) -> tuple[StepRecord | None, RoundRecord | None, IntArray]:
        """Raise what ``next_batch(step, size, round_)`` would refuse, changing nothing; answer
        the step's record, the round when it was issued already, and the prompts the step's
        earlier rounds issued. None of these rules reads
        what results change (sizes, rounds, the window, the strategy's ``check_request``), so
        ``advance`` checks its batch before it applies its results."""
        record = self.space.steps.record(step)
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
            return record, issued, np.zeros(0, dtype=np.int64)
        self._check_window(step)
        rounds_done = 0 if record is None else len(record.rounds)
        if round_ > rounds_done:
            raise ConflictError(
                f"round {round_} of step {step} was asked before round {rounds_done}",
                step=step,
                round=round_,
            )
        n = self.scalars.n
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
        self.strategy.check_request(self.view, step, round_, size, exclude)
        return record, None, exclude

    def _batch(self, step: int, round_: int, issued: RoundRecord) -> Batch:
        run_id = self.space.run_id
        return Batch(run_id, step, round_, self.space.ids.ids(issued.ids), issued.competence)

    # ------------------------------------------------------------------ results
    def resolve(self, parsed: ParsedResults) -> IntArray:
        """Indexes of the prompts named in results; unknown ids are an ``InvalidArgumentError``."""
        prompt_ids = parsed.prompt_ids
        idx = self.space.ids.lookup(prompt_ids, parsed.canonical)
        unknown = np.flatnonzero(idx < 0)
        if unknown.size:
            first = prompt_ids[int(unknown[0])]
            raise InvalidArgumentError(
                f"results name {unknown.size} unknown prompt id(s), first {first!r} "
                f"(results[{int(unknown[0])}])",
                field=f"results[{int(unknown[0])}].prompt_id",
                value=first,
            )
        return idx

    def report_results(self, step: int, results: list[Any] | ParsedResults) -> ReportOutcome:
        """Apply a step's results (parsed by ``parse_results``, or parsed here)."""
        parsed = results if isinstance(results, ParsedResults) else parse_results(results)
        idx = self._check_report(step, parsed)
        return self._apply_report(step, parsed, idx)

    def advance(self, step: int, results: ParsedResults, size: int) -> Advance:
        """The one-call step: ``report_results(step, results)``, then ``next_batch(step + 1,
        size, 0)``, answering exactly what the two calls would. Both requests are checked
        before anything changes, so a refused advance changes nothing (the batch's rules read
        nothing the results change; ``check_batch``). Idempotent as both halves are."""
        idx = self._check_report(step, results)
        self.check_batch(step + 1, size, 0)
        report = self._apply_report(step, results, idx)
        return Advance(report, self.next_batch(step + 1, size, 0))

    def _check_report(self, step: int, parsed: ParsedResults) -> IntArray:
        """Raise what ``report_results`` would refuse, changing nothing; the results' indexes."""
        idx = self.resolve(parsed)
        self._check_window(step)
        return idx

    def _apply_report(self, step: int, parsed: ParsedResults, idx: IntArray) -> ReportOutcome:
        steps, scalars = self.space.steps, self.scalars
        record = steps.record(step)
        c_now = self.view.competence
        fresh = np.ones(idx.size, dtype=np.bool_)
        used = np.full(idx.size, c_now)
        if record is not None:
            fresh = ~np.isin(idx, record.applied)
            for issued in record.rounds:
                used[issued.contains(idx)] = issued.competence
        applied = int(fresh.sum())
        duplicates = idx.size - applied
        groups = None
        if applied:
            sel = idx[fresh]
            pass_rate, total = parsed.pass_rates(self.threshold)[fresh], parsed.total[fresh]
            update = self._apply(sel, pass_rate, total, used[fresh], step)
            self.strategy.observe(self.view, update)
            record = record if record is not None else StepRecord()
            record.applied = merge_sorted(record.applied, sel.astype(np.int32))
            steps.put_record(step, record)
            stats = self._stats(step)
            stats.results += applied
            stats.pass_fixed += fixed_sum(pass_rate)
            zero_gradient = parsed.zero_gradient[fresh]
            groups = AppliedGroups(update.old_d, update.old_t, pass_rate, total, zero_gradient)
            stats.zero_gradient += int(zero_gradient.sum())
            rollouts = int(total.sum())
            stats.rollouts += rollouts
            stats.competence = self.view.competence
            steps.put_stats(stats)
            scalars.results += applied
            scalars.rollouts += rollouts
            self._advance(step)
        scalars.duplicates += duplicates
        return ReportOutcome(applied, duplicates, self.view.competence, groups)

    def _apply(
        self, idx: IntArray, pass_rate: FloatArray, total: IntArray, used: FloatArray, step: int
    ) -> Update:
        """One CDAS update of distinct prompts ``idx`` (``shared/CDAS.md``, step 3). O(m)."""
        old = self.space.core.gather(idx)
        new_d, new_t = updated_difficulty(old.d, old.t, used, pass_rate, self.strategy.min_weight)
        self.space.core.scatter(idx, CoreRows(new_d, new_t, pass_rate, np.full(idx.size, step)))
        scalars = self.scalars
        scalars.sum_fixed += fixed_sum(new_d) - fixed_sum(old.d)
        was_seen = old.t > 0
        scalars.seen += int((~was_seen).sum())
        hist = np.asarray(scalars.hist, dtype=np.int64)
        np.subtract.at(hist, histogram_bins(old.d[was_seen]), 1)
        np.add.at(hist, histogram_bins(new_d), 1)
        scalars.hist = hist.tolist()
        return Update(idx, old.d, new_d, old.t, new_t, pass_rate, total, step)

    # ------------------------------------------------------------------ reads
    def get_prompt(self, prompt_id: str) -> PromptInfo:
        k = self.space.ids.lookup([prompt_id])
        if k[0] < 0:
            raise PromptNotFoundError(self.space.run_id, prompt_id)
        rows = self.space.core.gather(k)
        labels = self.space.core.labels(k)
        updates = int(rows.t[0])
        label = None if labels is None or np.isnan(labels[0]) else float(labels[0])
        return PromptInfo(
            prompt_id=prompt_id,
            difficulty=float(rows.d[0]),
            updates=updates,
            last_pass_rate=float(rows.last_pass_rate[0]) if updates else None,
            last_step=int(rows.last_step[0]) if updates else None,
            label=label,
        )

    def prompt_page(self, start: int, limit: int) -> PromptPage:
        """Prompts ``start``..``start + limit - 1`` (those registered) as columns, in registration
        order, with the index the next page starts at (None at the end). O(limit): one slice of
        the core arrays and of the ids, whatever the run's size."""
        n = self.scalars.n
        lo, hi = min(start, n), min(start + limit, n)
        rows, labels = self.space.core.gather_range(lo, hi)
        updated = (rows.t > 0).tolist()
        pass_rates, steps = rows.last_pass_rate.tolist(), rows.last_step.tolist()
        columns = PromptColumns(
            prompt_id=self.space.ids.ids(np.arange(lo, hi, dtype=np.int64)),
            difficulty=rows.d.tolist(),
            updates=rows.t.tolist(),
            last_pass_rate=[s if u else None for s, u in zip(pass_rates, updated, strict=True)],
            last_step=[s if u else None for s, u in zip(steps, updated, strict=True)],
            label=(
                None
                if labels is None or hi == lo
                else [None if x != x else x for x in labels.tolist()]  # x != x: NaN, no label
            ),
        )
        return PromptPage(self.space.run_id, n, start, hi if hi < n else None, columns)

    def info(self, created: bool = False) -> RunInfo:
        s, config = self.scalars, self.space.config
        return RunInfo(
            run_id=self.space.run_id,
            strategy=config.strategy,
            params=config.params,
            seed=config.seed,
            size=s.n,
            step=s.max_step if s.max_step >= 0 else None,
            competence=self.view.competence,
            seen=s.seen,
            results=s.results,
            duplicates=s.duplicates,
            rollouts=s.rollouts,
            batches=s.batches,
            created=created,
        )

    def frontier(self, k: int) -> list[PromptInfo]:
        """The ``k`` prompts with results whose D is nearest C (smallest |D - C|, ties by index),
        by difficulty: where CDAS samples. O(N) (a scan and a partition); for dashboards."""
        s = self.scalars
        if k <= 0 or s.seen == 0:
            return []
        core = self.space.core.dump(s.n)
        seen = np.flatnonzero(core["t"] > 0)
        distance = np.abs(core["d"][seen] - self.view.competence)
        if k < seen.size:  # the k smallest distances; at the cut, the lowest indexes
            cut = np.partition(distance, k - 1)[k - 1]
            inside = np.flatnonzero(distance < cut)
            ties = np.flatnonzero(distance == cut)[: k - inside.size]
            seen = seen[np.sort(np.concatenate([inside, ties]))]
        chosen = seen[np.lexsort((seen, core["d"][seen]))]
        labels = core.get("labels")
        return [
            PromptInfo(
                prompt_id=prompt_id,
                difficulty=float(core["d"][i]),
                updates=int(core["t"][i]),
                last_pass_rate=float(core["last_pass_rate"][i]),
                last_step=int(core["last_step"][i]),
                label=None if labels is None or np.isnan(labels[i]) else float(labels[i]),
            )
            for i, prompt_id in zip(chosen, self.space.ids.ids(chosen), strict=True)
        ]

    def state(self, frontier: int = 0, history: bool = True, history_from: int = 0) -> RunState:
        """The dashboard state; the history of steps >= ``history_from`` (a poller asks only for
        what it has not seen), none with ``history=False`` (the metrics' scrape reads only the
        current values). ``frontier``: see ``frontier``."""
        s = self.scalars
        return RunState(
            run_id=self.space.run_id,
            strategy=self.space.config.strategy,
            step=s.max_step if s.max_step >= 0 else None,
            size=s.n,
            seen=s.seen,
            competence=self.view.competence,
            retired=self.strategy.retired_count(),
            histogram_edges=histogram_edges(),
            histogram_counts=list(s.hist),
            history=[
                stats.summary()
                for stats in (self.space.steps.all_stats() if history else [])
                if stats.step >= history_from
            ],
            frontier=self.frontier(frontier),
        )

    # ------------------------------------------------------------------ snapshots
    def load(self, restored: Restored) -> None:
        """Fill this (new, empty) run's space with a decoded snapshot's state. O(N)."""
        space = self.space
        space.ids.load(restored.ids)
        space.core.load(restored.core)
        space.scalars = restored.scalars.copy()
        for step, record in restored.records.items():
            space.steps.put_record(step, record)
        for stats in restored.stats:
            space.steps.put_stats(stats)
        try:
            self.strategy.load(self.view, restored.core, restored.strategy)
        except (KeyError, ValueError, IndexError) as exc:  # its own arrays missing or misshapen
            raise InvalidArgumentError(
                f"snapshot is damaged or incomplete: the {self.strategy.name} strategy's state "
                f"({type(exc).__name__}: {exc})",
                field="snapshot",
            ) from exc

    def snapshot(self) -> bytes:
        """The run's whole logical state (``cdas.core.snapshot``). O(N)."""
        space = self.space
        implicit, buf, off = space.ids.to_arrays()
        arrays: Arrays = {"ids_bytes": buf, "ids_offsets": off}
        arrays.update({f"core_{k}": v for k, v in space.core.dump(self.scalars.n).items()})
        arrays.update({f"strategy_{k}": v for k, v in self.strategy.dump().items()})
        steps = []
        for step, record in sorted(space.steps.records().items()):
            for r, issued in enumerate(record.rounds):
                arrays[f"step{step}_round{r}"] = issued.ids
            arrays[f"step{step}_applied"] = record.applied
            steps.append([step, [issued.competence for issued in record.rounds]])
        s = self.scalars
        meta = {
            "run_id": space.run_id,
            "config": space.config.to_dict(),
            "fingerprint": space.fingerprint,
            "implicit_ids": implicit,
            "max_step": s.max_step,
            "counts": {k: getattr(s, k) for k in COUNTERS},
            "records": steps,
            "stats": [stats.to_list() for stats in space.steps.all_stats()],
        }
        return snapshot_format.encode(meta, arrays)


def _labels_of(prompts: PromptSpec, start: int) -> FloatArray | None:
    """The labels of a registration, aligned with its prompts (NaN where none)."""
    if not prompts.labels:
        return None
    out = np.full(prompts.size, np.nan)
    position = (
        {prompt_id: k for k, prompt_id in enumerate(prompts.ids)} if prompts.ids is not None else {}
    )
    for key, value in prompts.labels.items():
        if prompts.ids is not None:
            k = position.get(key, -1)
        else:
            # ASCII digits only: "²".isdigit() is True, and int("²") raises
            numeral = isinstance(key, str) and key.isascii() and key.isdigit()
            k = int(key) - start if numeral else -1
            k = k if 0 <= k < prompts.size and str(start + k) == key else -1
        if k < 0:
            raise InvalidArgumentError(
                f"labels names {describe(key)}, which is not among the prompts of this call",
                field="labels",
                value=describe(key),
            )
        out[k] = value
    return out


class Restored:
    """A snapshot decoded and checked: what a store needs to build the run's space from it."""

    def __init__(self, data: bytes) -> None:
        meta, arrays = snapshot_format.decode(data)
        try:
            self.config = RunConfig.make(
                meta["config"]["strategy"], meta["config"]["params"], meta["config"]["seed"]
            )
            self.fingerprint = str(meta["fingerprint"])
            self.ids = PromptIds.from_arrays(
                int(meta["implicit_ids"]), arrays["ids_bytes"], arrays["ids_offsets"]
            )
            self.core = {k[5:]: v for k, v in arrays.items() if k.startswith("core_")}
            self.strategy = {k[9:]: v for k, v in arrays.items() if k.startswith("strategy_")}
            d = np.asarray(self.core["d"], dtype=np.float64)
            n = d.size
            if len(self.ids) != n:
                raise ValueError(f"{len(self.ids)} ids for {n} prompts")
            t = np.asarray(self.core["t"], dtype=np.int32)
            seen = t > 0
            hist = np.bincount(histogram_bins(d[seen]), minlength=HISTOGRAM_BINS)
            self.scalars = RunScalars(
                n=n,
                sum_fixed=fixed_sum(d),
                seen=int(seen.sum()),
                max_step=int(meta["max_step"]),
                hist=[int(x) for x in hist],
                **{k: int(meta["counts"][k]) for k in COUNTERS},
            )
            self.records: dict[int, StepRecord] = {}
            for step, competences in meta["records"]:
                record = StepRecord()
                for r, comp in enumerate(competences):
                    record.rounds.append(
                        RoundRecord(arrays[f"step{step}_round{r}"].astype(np.int32), float(comp))
                    )
                record.applied = arrays[f"step{step}_applied"].astype(np.int32)
                self.records[int(step)] = record
            self.stats = [StepStats.from_list(row) for row in meta["stats"]]
            if self.config.strategy == "curriculum" and "labels" not in self.core and n:
                raise ValueError("a curriculum run without labels")
        except InvalidArgumentError:
            raise
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InvalidArgumentError(
                f"snapshot is damaged or incomplete ({type(exc).__name__}: {exc})",
                field="snapshot",
                value=len(data),
            ) from exc
