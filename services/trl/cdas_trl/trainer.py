"""``CoordinatorGRPOTrainer``: TRL's ``GRPOTrainer`` with the coordinator choosing its prompts.

TRL 1.16 has no hook for choosing prompts: its ``RepeatSampler`` picks the rows and accelerate's
``DataLoaderShard`` fetches each batch one ahead of the one being trained on (to know which batch
is the last), so a sampler backed by the coordinator would ask for step t + 1 before step t's
rewards exist. The subclass therefore leaves the sampler and dataloader alone (they stay TRL's
clock: epochs, ``max_steps``, skipping batches on resume) and swaps the prompts at the one place a
generation batch is turned into completions, at the time it is generated:

- ``_generate_and_score_completions`` (training only): asks for the next coordinator step's batch
  of B prompts (B = ``generation_batch_size / num_generations``), replaces the rows the
  dataloader brought with the coordinator's rows, each ``num_generations`` times (TRL's layout;
  with several processes each takes its slice, as the sampler's shards would), lets TRL generate,
  score and compute advantages, and keeps every group's rewards for the post. Evaluation goes
  through untouched and is never reported;
- the post and the next ask are one call: step t's rewards go with ``advance(run, t, results,
  B)``, which answers step t + 1's batch, when TRL generates step t + 1. Whether TRL will generate
  again is not known when step t is scored (``max_steps``, epochs, callbacks that stop training
  decide it later), so the rewards wait for that ask rather than issue a batch no step may use.
  They are posted on their own (``report_results``) when a checkpoint is saved (before its
  coordinator state is written) and when ``train`` returns or fails, so a checkpoint never names
  a step whose predecessor's results are still in memory. The coordinator sees the same calls
  as before in the same order: each step's results, then the next step's batch; the first step
  and the first after a checkpoint or resume ask with ``next_batch``;
- ``_calculate_rewards``: keeps the rewards TRL computed (every reward function, gathered over
  processes) for the post. The posted reward of a completion is TRL's weighted sum over reward
  functions (``reward_weights``), the value TRL logs as ``reward``;
- ``train``: on ``resume_from_checkpoint`` reads the coordinator state the checkpoint holds (a
  ``TrainerCallback``'s ``on_save`` writes it), so a resumed run asks for the step it stopped at.

The coordinator step is the generation's number (1, 2, ...). TRL reuses a generation batch for
``steps_per_generation * num_iterations`` micro-steps; a checkpoint taken inside that window is
resumed by generating the same batch again (TRL's own behaviour after a restart), so the state
records the step to ask next: the current one when its window was not used up, else the one after.
The same (step, size) gets the same prompts, and results already applied count as duplicates.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import broadcast_object_list
from datasets import Dataset
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput, get_last_checkpoint
from trl.trainer.grpo_trainer import GRPOTrainer

import cdas
from cdas.client import integration
from cdas.client.integration import CoordinatorUnreachableError
from cdas.core.views import Advance, Batch, ReportOutcome
from cdas_trl.batches import dataset_prompt_ids, generation_rows, group_results
from cdas_trl.settings import CoordinatorClient, CoordinatorSettings, SettingsError
from cdas_trl.version import check_trl_version

log = logging.getLogger("cdas_trl")

STATE_FILE = "cdas_coordinator.json"
"""In each checkpoint folder: the run, the batch size and the coordinator step to ask next."""
SNAPSHOT_FILE = "cdas_coordinator.snapshot"
"""In each checkpoint folder, embedded coordinator only: the run's whole state (``snapshot``)."""


class UnsupportedSetupError(ValueError):
    """A trainer setup the integration cannot honour (the message names the setting)."""


class CheckpointStateError(ValueError):
    """A checkpoint's coordinator state is missing or belongs to another run or batch size."""


class CoordinatorGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` plus ``coordinator=CoordinatorSettings(...)``; every other argument is
    TRL's, unchanged."""

    def __init__(self, *args: Any, coordinator: CoordinatorSettings, **kwargs: Any) -> None:
        check_trl_version()
        given = inspect.signature(GRPOTrainer.__init__).bind(None, *args, **kwargs).arguments
        dataset = given.get("train_dataset")
        if not isinstance(dataset, Dataset):
            raise UnsupportedSetupError(
                f"train_dataset must be a datasets.Dataset (map-style: the coordinator's prompt "
                f"ids are looked up by row), got {type(dataset).__name__}"
            )
        ids = dataset_prompt_ids(dataset, coordinator.id_column, coordinator.label_column)
        if given.get("args") is not None:
            _check_batch_size(given["args"], len(ids))  # before the model is loaded
        super().__init__(*args, **kwargs)
        self.settings = coordinator
        self.prompt_ids = ids
        self.rows: Dataset = dataset
        """The training rows (the dataset TRL was given), looked up by prompt id."""
        self.row_of = {prompt_id: row for row, prompt_id in enumerate(ids)}
        self.batch_size = _check_batch_size(self.args, len(ids))
        """B: prompts per generation batch, the size of every coordinator batch."""
        self.group_size = int(self.args.num_generations)  # type: ignore[attr-defined]
        """G: completions per prompt, the rewards of one posted group."""
        self.generate_every = int(self.args.steps_per_generation) * self.num_iterations  # type: ignore[attr-defined]
        """Micro-steps one generation batch serves (TRL's ``_prepare_inputs``)."""
        self.applied = 0
        self.duplicates = 0
        self._next_step = 1
        self._last_step = 0
        self._rewards: torch.Tensor | None = None
        self._held: tuple[int, list[dict[str, Any]]] | None = None
        """A step's results not posted yet (main process): they go with the next step's ask."""
        self.coordinator: CoordinatorClient | None = None
        """The coordinator (main process only: the others receive its batches)."""
        if self.accelerator.is_main_process:
            self.coordinator = coordinator.connect()
            self._register()
        self.add_callback(CoordinatorCheckpoint(self))

    # -- the run ---------------------------------------------------------------------------------

    def _register(self) -> None:
        integration.register(self._call, self.settings, self.prompt_ids, SettingsError, log)

    def _call(self, method: str, *args: Any) -> Any:
        """One coordinator call; an unreachable coordinator becomes an error naming it."""
        return integration.call(
            self.coordinator,
            method,
            *args,
            where=self.settings.where,
            retry=f"CoordinatorSettings.retry_for={self.settings.retry_for}s",
        )

    # -- generation: the coordinator's prompts, then their rewards posted ------------------------

    def _generate_and_score_completions(
        self, inputs: list[dict[str, torch.Tensor | Any]]
    ) -> dict[str, torch.Tensor | Any]:
        if not self._training():  # evaluation: TRL's rows, never reported
            return super()._generate_and_score_completions(inputs)
        step = self._next_step
        ids = self._batch(step)
        rows = generation_rows(
            [self.rows[self.row_of[p]] for p in ids], list(inputs[0]), self.group_size
        )
        local, processes = len(inputs), self.accelerator.num_processes
        if local * processes != len(rows):
            raise UnsupportedSetupError(
                f"the dataloader brought {local} rows on each of {processes} processes for a "
                f"generation batch of {len(ids)} prompts x {self.group_size} generations"
            )
        start = self.accelerator.process_index * local
        self._rewards = None
        output = super()._generate_and_score_completions(rows[start : start + local])
        self._hold(step, ids)
        self._last_step, self._next_step = step, step + 1
        return output

    def _calculate_rewards(
        self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any
    ) -> torch.Tensor:
        rewards: torch.Tensor = super()._calculate_rewards(
            inputs, prompts, completions, completion_ids_list
        )
        if self._training():
            self._rewards = rewards  # every process's completions, every reward function
        return rewards

    def _batch(self, step: int) -> list[str]:
        """The coordinator's batch for ``step``: asked by the main process, sent to the others."""
        box: list[Any] = [None]
        if self.accelerator.is_main_process:
            box[0] = list(self._ask(step).prompt_ids)
        if self.accelerator.num_processes > 1:
            broadcast_object_list(box, from_process=0)
        ids: list[str] = box[0]
        unknown = [p for p in ids if p not in self.row_of]
        if unknown or len(ids) != self.batch_size:
            raise CheckpointStateError(
                f"the coordinator served {len(ids)} prompt ids for step {step} (asked for "
                f"{self.batch_size}), {len(unknown)} of them in no row of this dataset "
                f"(e.g. {unknown[:1]}): run {self.settings.run!r} was registered with another "
                "prompt set"
            )
        return ids

    def _ask(self, step: int) -> Batch:
        """Step ``step``'s batch: with the previous step's results held, one ``advance`` call
        posts them and answers it; else any held results are posted first, then ``next_batch``
        (the first step, and the first after a checkpoint or a resume)."""
        held = self._held
        if held is not None and held[0] == step - 1:
            answer: Advance = self._call(
                "advance", self.settings.run, held[0], held[1], self.batch_size
            )
            self._held = None
            self._count(held[0], answer.report)
            return answer.batch
        self.post_held()
        batch: Batch = self._call("next_batch", self.settings.run, step, self.batch_size)
        return batch

    def _hold(self, step: int, ids: list[str]) -> None:
        """Keep every group's rewards (main process; the rewards were gathered from all) for the
        post that goes with the next ask."""
        if not self.accelerator.is_main_process:
            return
        per_function = self._rewards
        if per_function is None:
            raise RuntimeError("TRL computed no rewards for the generation batch")
        weights = self.reward_weights.to(per_function.device).unsqueeze(0)
        total = (per_function * weights).nansum(dim=1)
        total[torch.isnan(per_function).all(dim=1)] = torch.nan  # no function scored it
        self.post_held()  # never two steps held (a step is held only until the next ask)
        results = group_results(ids, total.tolist(), self.group_size)
        self._held = (step, results) if results else None

    def post_held(self) -> None:
        """Post the held results on their own (``report_results``): before a checkpoint's
        coordinator state is written, and when ``train`` ends."""
        held = self._held
        if held is None:
            return
        outcome = self._call("report_results", self.settings.run, held[0], held[1])
        self._held = None
        self._count(held[0], outcome)

    def _count(self, step: int, outcome: ReportOutcome) -> None:
        self.applied += outcome.applied
        self.duplicates += outcome.duplicates
        log.debug("step %d: %d results applied, %d duplicates", step, outcome.applied,
                  outcome.duplicates)  # fmt: skip

    # -- checkpoints -----------------------------------------------------------------------------

    def resume_step(self) -> int:
        """The coordinator step a trainer resumed from a checkpoint taken now asks first: the
        current one while TRL would still reuse its batch, else the next."""
        buffered: object = self._buffered_inputs  # TRL's batch in use (None after a restart)
        if self._last_step and buffered is not None and self._step % self.generate_every:
            return self._last_step
        return self._next_step

    def save_coordinator_state(self, folder: Path) -> None:
        state = {
            "run": self.settings.run,
            "batch_size": self.batch_size,
            "step": self.resume_step(),
        }
        (folder / STATE_FILE).write_text(json.dumps(state) + "\n")
        if self.settings.embedded and isinstance(self.coordinator, cdas.Coordinator):
            (folder / SNAPSHOT_FILE).write_bytes(self.coordinator.snapshot(self.settings.run))

    def load_coordinator_state(self, folder: Path) -> None:
        path = folder / STATE_FILE
        try:
            state: Mapping[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise CheckpointStateError(
                f"checkpoint {str(folder)!r} has no readable {STATE_FILE} ({error}): it was not "
                "saved by CoordinatorGRPOTrainer"
            ) from error
        for key, mine in (("run", self.settings.run), ("batch_size", self.batch_size)):
            if state.get(key) != mine:
                raise CheckpointStateError(
                    f"checkpoint {str(folder)!r} has coordinator {key} {state.get(key)!r}, this "
                    f"trainer has {mine!r}"
                )
        if self.settings.embedded and isinstance(self.coordinator, cdas.Coordinator):
            self.coordinator.restore(self.settings.run, (folder / SNAPSHOT_FILE).read_bytes())
        self._next_step = int(state["step"])
        self._last_step = 0

    def train(
        self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any
    ) -> TrainOutput:
        """TRL's ``train``; a resumed run first restores the coordinator state of its checkpoint."""
        self.post_held()
        checkpoint: str | None = None
        if resume_from_checkpoint is True:
            checkpoint = get_last_checkpoint(str(self.args.output_dir))  # type: ignore[no-untyped-call]
            if checkpoint is None:
                raise ValueError(
                    f"resume_from_checkpoint=True but output_dir {self.args.output_dir!r} holds "
                    "no checkpoint"
                )
        elif isinstance(resume_from_checkpoint, str) and resume_from_checkpoint:
            checkpoint = resume_from_checkpoint
        if checkpoint is not None:
            self.load_coordinator_state(Path(checkpoint))
        else:
            self._next_step, self._last_step = 1, 0
        try:
            output = super().train(checkpoint, *args, **kwargs)
        except Exception as failure:
            if not isinstance(failure, CoordinatorUnreachableError):  # else it waited already
                try:
                    self.post_held()
                except Exception as error:  # the training error is the one to raise
                    log.warning("the last step's results were not posted: %s", error)
            raise
        self.post_held()  # the last step's results: no further ask to carry them
        return output

    def _training(self) -> bool:
        """TRL's own test for a training (not an evaluation) generation."""
        return self.model is not None and bool(self.model.training)


class CoordinatorCheckpoint(TrainerCallback):
    """Writes the coordinator state into each checkpoint folder Trainer has just saved."""

    def __init__(self, trainer: CoordinatorGRPOTrainer) -> None:
        self.trainer = trainer

    def on_save(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self.trainer.post_held()  # the checkpoint's state counts every step before it as posted
        if args.should_save:
            folder = Path(str(args.output_dir)) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            self.trainer.save_coordinator_state(folder)


def _check_batch_size(args: Any, prompts: int) -> int:
    """B = generation_batch_size / num_generations, which must fit in the dataset."""
    size = int(args.generation_batch_size) // int(args.num_generations)
    if not 1 <= size <= prompts:
        raise UnsupportedSetupError(
            f"a generation batch holds generation_batch_size {args.generation_batch_size} / "
            f"num_generations {args.num_generations} = {size} prompts; the coordinator serves "
            f"between 1 and the dataset's {prompts}"
        )
    return size


__all__ = [
    "CheckpointStateError",
    "CoordinatorCheckpoint",
    "CoordinatorGRPOTrainer",
    "CoordinatorUnreachableError",
    "UnsupportedSetupError",
]
