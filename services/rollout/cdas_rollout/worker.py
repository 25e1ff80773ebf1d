"""The rollout loop: ask the coordinator for a step's prompts, generate, grade, report.

Per step ``t`` (from ``start_step``, or from where the state directory says this worker stopped):

1. ``next_batch(run, t, B)``: the step's B prompt ids (idempotent per (step, round): every worker
   of the step, and every retry, gets the same ids);
2. this worker's share: ``ids[worker_index::workers]`` (several workers split one step);
3. G completions per prompt from the backend, graded against the dataset's ground truth
   (``grading.grade``: reward 1.0 or 0.0 per rollout);
4. the post, ``[{"prompt_id", "rewards": [r_1..r_G]}, ...]``; the coordinator turns rewards
   into pass rates (a rollout is correct when its reward exceeds the run's threshold) and updates
   D and C (CDAS: ``D(x) <- D(x) + (P(x) - s(x) - D(x)) / t(x)`` with
   ``P(x) = sigmoid(C_{t-1} - D(x))``, then ``C = -mean D``). The worker posts a step's share
   once, when it is graded, and asks for the next step right after, with the same B: so when
   this process runs step t + 1 next (every step of ``run`` but its last), the post is
   ``advance(run, t, results, B)``, which also answers step t + 1's batch (point 1 of the next
   step, without another call), exactly what ``report_results`` then ``next_batch`` would answer.
   The last step, a re-posted spooled step and an empty share post with ``report_results`` (or
   not at all), and the next step asks with ``next_batch``.

No result is lost or applied twice, through these faults:

- The coordinator unreachable for a while (restarting, network): the SDK client retries each call
  with jittered backoff for ``RetryPolicy(for_seconds=...)`` (``--retry-for``). This is safe
  because ``next_batch`` is idempotent per (step, round) and ``report_results`` applies each
  (step, prompt id) at most once: a retried post whose first try did arrive counts as a
  duplicate and changes nothing (``advance`` is both, in one call).
- The worker killed at any point and restarted with the same ``state_dir``. The state directory
  holds::

      state.json              {"run_id", "worker_index", "workers", "batch_size", "group_size",
                               "next_step": t}  -- steps before t are confirmed posted
      pending/step-<t>.json   graded results of step t, written before posting (the spool)
      done/step-<t>.json      the step's report after the coordinator answered (results and
                              the answer: applied, duplicates, competence)

  Per step the order is: grade -> write ``pending/step-t`` -> post -> write ``done/step-t`` ->
  write ``state.json`` (next_step t+1) -> delete ``pending/step-t``. Every file is written
  atomically (temporary file, fsync, ``os.replace``, fsync of the directory), so a kill leaves
  either the old or the new version, never half a file. On start the worker first re-posts every
  pending step (killed after spooling: the post applies it; killed after posting: the post is a
  duplicate, harmless), then continues at ``next_step``. Killed before spooling (while
  generating), the step is simply redone: ``next_batch`` returns the same prompts, nothing of it
  was posted. Rollouts are sampled afresh then, so the redone step's rewards may differ from
  those the killed process had; only one set is ever applied.
  The identity fields guard against reusing one state directory for another run or another
  share of the batch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cdas.core.api import Batches
from cdas.core.views import Batch
from cdas_rollout.backends import Backend, check_shape
from cdas_rollout.dataset import Dataset, PromptFormatter
from cdas_rollout.grading import grade

log = logging.getLogger("cdas_rollout")

STATE_VERSION = 1


CoordinatorClient = Batches
"""The step calls the worker makes, ``next_batch``, ``report_results`` and ``advance``
(``cdas.core.api``); ``cdas.client.RestClient``, ``cdas.client.GrpcClient`` and the in-process
``cdas.Coordinator`` all have them."""


class StateError(RuntimeError):
    """The state directory belongs to another run or worker, or is unreadable."""


@dataclass(frozen=True)
class StepReport:
    """What one worker did at one step: its share of the batch, the rewards it graded (one list
    of G per prompt, in ``prompt_ids`` order) and the coordinator's answer to the post."""

    step: int
    prompt_ids: list[str]
    rewards: list[list[float]]
    batch_competence: float
    """C when the batch was issued (``next_batch``'s answer): the C_{t-1} of CDAS's update."""
    competence: float | None = None
    """C after the post (the answer to ``report_results``)."""
    applied: int | None = None
    duplicates: int | None = None
    completions: list[list[str]] | None = None
    """The texts, when the worker keeps them (``keep_completions``)."""
    recovered: bool = False
    """Posted from the spool by a restarted worker (the killed one may have posted it too)."""

    @property
    def pass_rates(self) -> list[float]:
        """Fraction of each prompt's rollouts with reward above 0.5 (the 0/1 rewards' threshold)."""
        return [sum(r > 0.5 for r in group) / len(group) for group in self.rewards]

    @property
    def mean_pass_rate(self) -> float:
        rates = self.pass_rates
        return sum(rates) / len(rates) if rates else math.nan

    @property
    def zero_gradient(self) -> int:
        """Groups whose rewards all agree (zero advantage, zero gradient in GRPO)."""
        return sum(len(set(group)) <= 1 for group in self.rewards)

    def results(self) -> list[dict[str, Any]]:
        """The ``report_results`` body: per-rollout rewards per prompt."""
        return [
            {"prompt_id": pid, "rewards": list(group)}
            for pid, group in zip(self.prompt_ids, self.rewards, strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepReport:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class WorkerConfig:
    run_id: str
    batch_size: int
    group_size: int
    worker_index: int = 0
    workers: int = 1
    state_dir: Path | None = None
    keep_completions: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.group_size < 1:
            raise ValueError(f"group size must be >= 1, got {self.group_size}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not 0 <= self.worker_index < self.workers:
            raise ValueError(
                f"worker index must be in [0, {self.workers}), got {self.worker_index}"
            )

    def identity(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "worker_index": self.worker_index,
            "workers": self.workers,
            "batch_size": self.batch_size,
            "group_size": self.group_size,
        }


def write_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON so that a crash leaves the old file or the new one, never a torn one:
    temporary file in the same directory, fsync, ``os.replace``, fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _step_file(directory: Path, step: int) -> Path:
    return directory / f"step-{step:010d}.json"


def load_reports(state_dir: Path) -> list[StepReport]:
    """The confirmed steps' reports in a state directory, by step."""
    done = Path(state_dir) / "done"
    if not done.is_dir():
        return []
    return [
        StepReport.from_dict(json.loads(p.read_text(encoding="utf-8")))
        for p in sorted(done.glob("step-*.json"))
    ]


@dataclass
class RolloutWorker:
    """Runs steps against a coordinator (see the module docstring)."""

    client: CoordinatorClient
    dataset: Dataset
    backend: Backend
    config: WorkerConfig
    grader: Callable[[str, str], float] = grade
    formatter: Callable[[Any], str] | None = None
    next_step: int | None = field(default=None, init=False)
    _held: Batch | None = field(default=None, init=False, repr=False)
    """The next step's batch, answered by the last post's ``advance``."""

    def __post_init__(self) -> None:
        if self.formatter is None:
            self.formatter = PromptFormatter(getattr(self.backend, "tokenizer", None))
        if self.config.state_dir is not None:
            self._load_state()

    # ---------------------------------------------------------------- state directory
    @property
    def _state_file(self) -> Path:
        assert self.config.state_dir is not None
        return self.config.state_dir / "state.json"

    def _load_state(self) -> None:
        assert self.config.state_dir is not None
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        if not self._state_file.exists():
            self._save_state(None)
            return
        try:
            state = json.loads(self._state_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StateError(f"{self._state_file} is not JSON: {exc}") from None
        mine = self.config.identity()
        theirs = {k: state.get(k) for k in mine}
        if theirs != mine:
            raise StateError(
                f"state dir {self.config.state_dir} belongs to {theirs}, not {mine}; "
                "use another --state-dir"
            )
        self.next_step = state.get("next_step")

    def _save_state(self, next_step: int | None) -> None:
        if self.config.state_dir is None:
            return
        write_atomic(
            self._state_file,
            {"version": STATE_VERSION, **self.config.identity(), "next_step": next_step},
        )

    # ---------------------------------------------------------------- the loop
    def recover(self) -> list[StepReport]:
        """Re-post every spooled step not confirmed yet (a duplicate when the killed process had
        posted it already), oldest first. Returns their reports."""
        if self.config.state_dir is None:
            return []
        pending = self.config.state_dir / "pending"
        reports = []
        for path in sorted(pending.glob("step-*.json")) if pending.is_dir() else []:
            report = StepReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
            log.info(
                "step %d: re-posting spooled results (%d prompts)",
                report.step,
                len(report.prompt_ids),
            )
            reports.append(self._post(report, path, recovered=True))
        return reports

    def run(self, steps: int, start_step: int = 1) -> list[StepReport]:
        """Run steps ``start_step .. start_step + steps - 1``, resuming after the last confirmed
        step of the state directory (same command line after a restart: the same end step).
        Returns this process's reports (re-posted spooled steps included)."""
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if start_step < 0:
            raise ValueError(f"start step must be >= 0, got {start_step}")
        reports = self.recover()
        first = max(start_step, self.next_step if self.next_step is not None else start_step)
        end = start_step + steps
        for step in range(first, end):
            reports.append(self.run_step(step, following=step + 1 < end))
        return reports

    def run_step(self, step: int, *, following: bool = False) -> StepReport:
        """One step: batch, generate, grade, spool, post, confirm. ``following``: step + 1 is
        this process's next, so the post is ``advance``, whose answer (step + 1's batch) the
        next ``run_step`` uses instead of asking."""
        config = self.config
        batch = self._batch(step)
        share = batch.prompt_ids[config.worker_index :: config.workers]
        examples = [self.dataset[pid] for pid in share]
        completions: list[list[str]] = []
        if examples:
            assert self.formatter is not None
            texts = [self.formatter(e.prompt) for e in examples]
            completions = check_shape(
                texts, config.group_size, self.backend.generate(texts, config.group_size)
            )
        rewards = [
            [float(self.grader(text, e.answer)) for text in group]
            for e, group in zip(examples, completions, strict=True)
        ]
        report = StepReport(
            step=step,
            prompt_ids=list(share),
            rewards=rewards,
            batch_competence=batch.competence,
            completions=completions if config.keep_completions else None,
        )
        spool: Path | None = None
        if config.state_dir is not None:
            spool = _step_file(config.state_dir / "pending", step)
            write_atomic(spool, report.to_dict())
        return self._post(report, spool, following=following)

    def _batch(self, step: int) -> Batch:
        """Step ``step``'s batch: the one the last ``advance`` answered, else ``next_batch``."""
        held, self._held = self._held, None
        if held is not None and held.step == step and held.round == 0:
            return held
        return self.client.next_batch(self.config.run_id, step, self.config.batch_size)

    def _post(
        self,
        report: StepReport,
        spool: Path | None,
        recovered: bool = False,
        following: bool = False,
    ) -> StepReport:
        config = self.config
        if report.prompt_ids:
            if following:
                answer = self.client.advance(
                    config.run_id, report.step, report.results(), config.batch_size
                )
                outcome, self._held = answer.report, answer.batch
            else:
                outcome = self.client.report_results(config.run_id, report.step, report.results())
            competence, applied, duplicates = (
                outcome.competence,
                outcome.applied,
                outcome.duplicates,
            )
        else:  # more workers than prompts: nothing to post for this one
            competence, applied, duplicates = report.batch_competence, 0, 0
        done = StepReport(
            **{
                **report.to_dict(),
                "competence": competence,
                "applied": applied,
                "duplicates": duplicates,
                "recovered": recovered,
            }
        )
        if self.config.state_dir is not None:
            write_atomic(_step_file(self.config.state_dir / "done", report.step), done.to_dict())
            next_step = max(report.step + 1, self.next_step or 0)
            self._save_state(next_step)
            self.next_step = next_step
            if spool is not None:
                spool.unlink(missing_ok=True)
        else:
            self.next_step = max(report.step + 1, self.next_step or 0)
        log.info(
            "step %d: %d prompts x %d, mean pass rate %.3f, zero-gradient groups %d/%d, "
            "competence %.6f (applied %d, duplicates %d)",
            done.step,
            len(done.prompt_ids),
            self.config.group_size,
            done.mean_pass_rate if done.prompt_ids else math.nan,
            done.zero_gradient,
            len(done.prompt_ids),
            competence,
            applied,
            duplicates,
        )
        return done
