"""The experiment: every (strategy, seed) trained from one warm start, side by side.

The warm start is made (or read) first, in this process. Then the runs go to ``workers`` worker
processes (spawned, one torch thread each on the CPU; each run's numbers do not depend on which
worker ran it, nor on how many there are): on two cores, two runs at a time. Each worker talks to
the coordinator at ``url`` through the SDK, riding out an outage for ``retry_for`` seconds; without
a URL each worker holds an embedded coordinator (``cdas.Coordinator(cdas.MemoryStore())``), which
gives the same answers, since runs share no state.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import cdas
from cdas.client.connect import connect
from cdas.client.retry import RetryPolicy
from cdas_grpo.records import GrpoStep
from cdas_grpo.run import RungRow, RunResult, start_run, train_run
from cdas_grpo.settings import Settings
from cdas_grpo.warmstart import PromptSets, WarmReport, prompt_sets, warm_start


@dataclass(frozen=True)
class Plan:
    """What to run and where (the settings are fixed apart from it)."""

    settings: Settings
    strategies: Sequence[str]
    seeds: int
    out: Path
    device: str = "cpu"
    url: str | None = None
    token: str | None = None
    retry_for: float = 120.0
    workers: int = 1
    prefix: str = "grpo"
    ca: str | None = None
    """The CA bundle of a TLS ``url`` (None: ``$CDAS_CA_FILE``, else the default CAs)."""

    def pairs(self) -> list[tuple[str, int]]:
        return [(s, seed) for s in self.strategies for seed in range(self.seeds)]


def client_for(plan: Plan) -> Any:
    """The coordinator a run talks to: the SDK client for ``plan.url``, else an embedded one."""
    if plan.url is None:
        return cdas.Coordinator(cdas.MemoryStore())
    retry = RetryPolicy(for_seconds=plan.retry_for, max_delay=2)
    return connect(plan.url, plan.token, retry=retry, ca=plan.ca)


_progress: Any = None
"""In a worker process: the queue its runs' records go to (the parent's progress bar)."""


def _worker_setup(threads: int, progress: Any) -> None:
    global _progress
    torch.set_num_threads(threads)
    _progress = progress


def one_run(
    plan: Plan,
    strategy: str,
    seed: int,
    warm: dict[str, torch.Tensor],
    sets: PromptSets,
    on_step: Callable[[GrpoStep], None] | None = None,
) -> RunResult:
    """Create the (strategy, seed) run and train it."""
    client = client_for(plan)
    try:
        name = start_run(client, plan.settings, strategy, seed, plan.prefix, sets.train)
        report = on_step
        if report is None and _progress is not None:
            report = _progress.put
        return train_run(
            client, name, plan.settings, warm, sets, seed, torch.device(plan.device), report,
            label=strategy,
        )  # fmt: skip
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            close()


def run(
    plan: Plan,
    on_warm_step: Callable[[int], None] | None = None,
    on_step: Callable[[GrpoStep], None] | None = None,
) -> tuple[WarmReport, list[GrpoStep], list[RungRow]]:
    """The warm start, then every run; the records in (strategy, seed, step) order, and where
    each run's training went by rung."""
    device = torch.device(plan.device)
    sets = prompt_sets(plan.settings)
    warm, report = warm_start(plan.settings, sets, plan.out, device, on_warm_step)
    warm = {k: v.cpu() for k, v in warm.items()}
    results: dict[tuple[str, int], RunResult] = {}
    if plan.workers <= 1:
        for strategy, seed in plan.pairs():
            results[(strategy, seed)] = one_run(plan, strategy, seed, warm, sets, on_step)
    else:
        context = multiprocessing.get_context("spawn")
        manager = context.Manager()
        progress = manager.Queue()
        threads = 1 if device.type == "cpu" else torch.get_num_threads()
        with ProcessPoolExecutor(
            plan.workers, mp_context=context, initializer=_worker_setup,
            initargs=(threads, progress),
        ) as pool:  # fmt: skip
            futures: dict[Future[RunResult], tuple[str, int]] = {
                pool.submit(one_run, plan, s, seed, warm, sets): (s, seed)
                for s, seed in plan.pairs()
            }
            pending = set(futures)
            while pending:
                try:
                    record = progress.get(timeout=0.2)
                    if on_step is not None:
                        on_step(record)
                except queue.Empty:
                    pass
                for future in [f for f in pending if f.done()]:
                    pending.discard(future)
                    results[futures[future]] = future.result()
            while not progress.empty() and on_step is not None:
                on_step(progress.get())
        manager.shutdown()
    pairs = plan.pairs()
    records = [r for pair in pairs for r in results[pair].records]
    return report, records, [row for pair in pairs for row in results[pair].rungs]
