"""``CoordinatorSampler``: verl's curriculum sampler, backed by the cdas coordinator.

verl 0.7.1 builds the training sampler in ``create_rl_sampler`` (``verl/trainer/main_ppo.py``):
with
``data.sampler.class_path`` set it loads the class, builds it with ``(data_source=dataset,
data_config=config.data)`` and hands it to a ``StatefulDataLoader`` that draws ``gen_batch_size``
(default ``train_batch_size``) indexes per batch. ``RayPPOTrainer.fit`` draws one batch per step
and, after the step's update, calls ``sampler.update(batch=batch)`` with the batch and its
rewards. So:

- the draws of step t are ``next_batch(run, t, B)``'s prompt ids, as dataset indexes, asked for
  lazily at the first draw of the step (the dataloader must not prefetch: ``num_workers`` 0,
  checked here, as verl itself asserts);
- draws beyond B before ``update`` (a trainer that pulls further batches inside one step, as DAPO's
  group filter does) come from rounds 1, 2, ... of the same step, each asked with size B: the
  ``dynamic`` strategy's rounds, and for every other strategy the refill rule of the OpenRLHF
  integration (``cdas_openrlhf.loader``). A step may use ``max_rounds`` rounds;
- ``update(batch)`` posts every group of the batch not posted yet (verl's ``uid``, ``rollout.n``
  rewards each) and ends the step; ``report(batch)`` posts without ending it, for groups a trainer
  generated but will not hand to ``update`` (DAPO's filtered ones). A group is posted once per
  step, whichever call saw it first;
- ``update`` posts with ``advance(run, t, results, B)`` when verl will run another step: the same
  call answers step t + 1's round 0, which the next draws use (what ``report_results`` then the
  next step's ``next_batch`` would answer, in one call). verl's last step
  (``trainer.total_training_steps``, else batches per pass x ``trainer.total_epochs``, as
  ``RayPPOTrainer`` counts them, read from the config ``data`` belongs to) posts with
  ``report_results``, so no batch is issued that no step uses. The sampler counts verl's global
  step itself (one per ``update``, and in its state); when it cannot (a sampler config outside a
  verl config, a checkpoint saved before it was recorded), every step posts with
  ``report_results`` and the next one asks with ``next_batch``, as before;
- ``state_dict``/``load_state_dict`` ride in the dataloader's state, which verl saves in every
  checkpoint (``data.pt``). verl saves it before it calls ``update`` for the step, so the state
  names that step: a resumed job asks for it again with ``next_batch`` (the same prompts; results
  already applied are duplicates at the coordinator). With the embedded coordinator the state
  also holds the run's snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence, Sized
from typing import Any

import numpy as np
from omegaconf import DictConfig
from verl import DataProto
from verl.experimental.dataset.sampler import AbstractCurriculumSampler

import cdas
from cdas.client import integration
from cdas.client.integration import CoordinatorUnreachableError
from cdas.core.errors import InvalidArgumentError
from cdas.core.views import ReportOutcome
from cdas_verl.groups import Group, dataset_prompt_ids, groups
from cdas_verl.settings import (
    BATCH_KEYS,
    SECTION,
    CoordinatorClient,
    SamplerSettings,
    SettingsError,
)
from cdas_verl.version import check_verl_version

log = logging.getLogger("cdas_verl")

REWARD_KEYS = ("token_level_scores", "token_level_rewards", "rm_scores")
"""Where a rollout's reward is, first found wins: its token-level score summed (the reward
function's value, before any KL penalty; what DAPO's ``seq_reward`` filters on)."""


class UnsupportedSetupError(ValueError):
    """A verl setting the sampler cannot work with (the message names it)."""


class SamplerStateError(ValueError):
    """A checkpoint's sampler state belongs to another run or batch size, or the coordinator
    served an id no row has."""


class RoundsExhaustedError(RuntimeError):
    """A step drew more batches than the coordinator serves rounds for."""


class CoordinatorSampler(AbstractCurriculumSampler):  # type: ignore[misc]
    """Load it with ``data.sampler.class_path=pkg://cdas_verl.sampler`` and
    ``data.sampler.class_name=CoordinatorSampler``; settings under ``data.sampler.cdas``."""

    def __init__(self, data_source: Sized, data_config: DictConfig) -> None:
        check_verl_version()
        workers = data_config.get("dataloader_num_workers", 8)
        if workers != 0:
            raise UnsupportedSetupError(
                f"data.dataloader_num_workers is {workers}; set it to 0: worker processes fetch "
                "batches ahead, so the sampler would ask for step t + 1 before step t's rewards "
                "were posted (verl asserts the same for every curriculum sampler)"
            )
        sampler = data_config.get("sampler") or {}
        self.settings = SamplerSettings.from_config(sampler.get("cdas"))
        self.batch_size = int(data_config.get("gen_batch_size") or data_config["train_batch_size"])
        """B: indexes per dataloader batch, the size of every coordinator batch (each round's)."""
        setting = f"{SECTION}.id_key"
        self.ids = dataset_prompt_ids(
            _rows(data_source, self.settings.id_key), self.settings.id_key, setting
        )
        if not 1 <= self.batch_size <= len(self.ids):
            raise UnsupportedSetupError(
                f"a dataloader batch holds {self.batch_size} prompts (data.gen_batch_size or "
                f"data.train_batch_size); the coordinator serves between 1 and the dataset's "
                f"{len(self.ids)}"
            )
        self.row_of = {prompt_id: row for row, prompt_id in enumerate(self.ids)}
        self.applied = 0
        self.duplicates = 0
        self.step = 1
        """The coordinator step the current draws belong to (verl's global step, until a resume
        asks a step again)."""
        self.global_step: int | None = 1
        """verl's global step the current draws belong to (``RayPPOTrainer.global_steps``; ahead
        of ``step`` after a resume); None when unknown."""
        self.total_steps = _total_steps(data_config, len(self) // self.batch_size)
        """verl's last global step; None when the config does not say."""
        self._drawn = 0
        self._pass_drawn = 0
        self._resume_at: int | None = None
        self._rounds: dict[int, list[str]] = {}
        self._served: set[str] = set()
        self._posted: set[str] = set()
        self.client: CoordinatorClient = self.settings.connect()
        self._register()

    # -- the run ---------------------------------------------------------------------------------

    def _register(self) -> None:
        integration.register(self._call, self.settings, self.ids, SettingsError, log)

    def _call(self, method: str, *args: Any) -> Any:
        return integration.call(
            self.client,
            method,
            *args,
            where=self.settings.where,
            retry=f"{SECTION}.retry_for={self.settings.retry_for}s",
        )

    # -- the sampler face the dataloader sees ----------------------------------------------------

    def __len__(self) -> int:
        """Indexes per pass: whole batches only, so a pass never ends inside a batch (verl's
        dataloader drops the last partial batch, which would cost coordinator draws)."""
        return len(self.ids) // self.batch_size * self.batch_size

    def __iter__(self) -> Iterator[int]:
        return self._pass()

    def _pass(self) -> Iterator[int]:
        """One pass (a verl epoch); a pass restored from a checkpoint starts where it stood."""
        self._pass_drawn, self._resume_at = self._resume_at or 0, None
        while self._pass_drawn < len(self):
            index = self._draw()
            self._pass_drawn += 1
            yield index
        self._pass_drawn = 0

    def _draw(self) -> int:
        round_, position = divmod(self._drawn, self.batch_size)
        ids = self._rounds.get(round_)
        if ids is None:
            ids = self._rounds[round_] = self._batch(round_)
        prompt_id = ids[position]
        self._served.add(prompt_id)
        self._drawn += 1
        return self.row_of[prompt_id]

    def _batch(self, round_: int) -> list[str]:
        if round_ >= self.settings.max_rounds:
            raise RoundsExhaustedError(
                f"step {self.step} drew {round_ + 1} batches before update() was called; "
                f"{SECTION}.max_rounds is {self.settings.max_rounds}. A trainer that draws further "
                "batches inside a step (DAPO's group filter) must keep "
                "algorithm.filter_groups.max_num_gen_batches within it, and one that never calls "
                "update() cannot use this sampler"
            )
        try:
            batch = self._call("next_batch", self.settings.run, self.step, self.batch_size, round_)
        except InvalidArgumentError as error:
            if round_ == 0:
                raise
            raise RoundsExhaustedError(
                f"the coordinator serves no round {round_} of step {self.step}: {error}"
            ) from error
        return self._known(batch.prompt_ids, self.step)

    def _known(self, ids: Sequence[str], step: int) -> list[str]:
        """The served ids, each one a row of this dataset."""
        unknown = [p for p in ids if p not in self.row_of]
        if unknown:
            raise SamplerStateError(
                f"the coordinator served prompt id {unknown[0]!r} for step {step}, which no "
                f"row of this dataset has: run {self.settings.run!r} was registered with another "
                "prompt set"
            )
        return list(ids)

    # -- results ---------------------------------------------------------------------------------

    def update(self, batch: DataProto) -> None:
        """verl's hook, called once per step after the update: post the step's groups not posted
        yet, then move to the next step. When verl runs another step, the post is ``advance``,
        whose answer is the next step's round 0."""
        if not self._followed():
            self.report(batch)
            self._end_step()
            return
        fresh, results = self._fresh(batch)
        answer = self._call("advance", self.settings.run, self.step, results, self.batch_size)
        self._posted_now(fresh, answer.report)
        following = self._known(answer.batch.prompt_ids, self.step + 1)
        self._end_step()
        self._rounds[0] = following

    def _followed(self) -> bool:
        """Whether verl runs a step after the current one."""
        return (
            self.global_step is not None
            and self.total_steps is not None
            and self.global_step < self.total_steps
        )

    def _end_step(self) -> None:
        self.step += 1
        if self.global_step is not None:
            self.global_step += 1
        self._drawn = 0
        self._rounds.clear()
        self._served.clear()
        self._posted.clear()

    def report(self, batch: DataProto) -> int:
        """Post the groups of ``batch`` not yet posted in this step (the step goes on); returns
        how many were posted. For a trainer that generates groups it will not hand to
        ``update``: DAPO's group filter drops zero-variance groups before training."""
        fresh, results = self._fresh(batch)
        if not fresh:
            return 0
        outcome = self._call("report_results", self.settings.run, self.step, results)
        self._posted_now(fresh, outcome)
        return len(fresh)

    def _fresh(self, batch: DataProto) -> tuple[list[Group], list[dict[str, Any]]]:
        """The groups of ``batch`` not posted yet in this step, and their results (the same
        prompt twice is one result)."""
        fresh = [g for g in batch_groups(batch, self.settings.id_key) if g.uid not in self._posted]
        strangers = sorted({g.prompt_id for g in fresh} - self._served)
        if strangers:
            raise SamplerStateError(
                f"a group of prompt {strangers[0]!r} came back in step {self.step}, which did not "
                f"serve it: {SECTION}.id_key {self.settings.id_key!r} must name the row's own id"
            )
        merged: dict[str, list[float]] = {}
        for group in fresh:
            merged.setdefault(group.prompt_id, []).extend(group.rewards)
        return fresh, [{"prompt_id": p, "rewards": r} for p, r in merged.items()]

    def _posted_now(self, fresh: list[Group], outcome: ReportOutcome) -> None:
        self.applied += outcome.applied
        self.duplicates += outcome.duplicates
        self._posted.update(g.uid for g in fresh)
        log.debug("step %d: %d groups posted (%d applied, %d duplicates)", self.step,
                  len(fresh), outcome.applied, outcome.duplicates)  # fmt: skip

    # -- checkpoints (inside the dataloader's state) ---------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The step to ask first on resume: the current one while it has draws not yet ended by
        ``update`` (verl saves before it calls ``update``), else the next."""
        state: dict[str, Any] = {
            "run": self.settings.run,
            "batch_size": self.batch_size,
            "step": self.step,
            "pass_drawn": max(0, self._pass_drawn - self._drawn),
            "global_step": self.global_step,
        }
        if self.settings.embedded and isinstance(self.client, cdas.Coordinator):
            state["snapshot"] = self.client.snapshot(self.settings.run)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, mine in (("run", self.settings.run), ("batch_size", self.batch_size)):
            if state.get(key) != mine:
                raise SamplerStateError(
                    f"the checkpoint's sampler state has {key} {state.get(key)!r}, this job has "
                    f"{mine!r} ({SECTION}.run, data.gen_batch_size / data.train_batch_size)"
                )
        if self.settings.embedded and isinstance(self.client, cdas.Coordinator):
            if "snapshot" not in state:
                raise SamplerStateError("the checkpoint's sampler state holds no run snapshot")
            self.client.restore(self.settings.run, state["snapshot"])
        self.step = int(state["step"])
        saved = state.get("global_step")  # verl resumes at the step after the checkpoint's
        self.global_step = None if saved is None else int(saved) + 1
        self._resume_at = int(state["pass_drawn"])
        self._drawn = 0
        self._rounds.clear()
        self._served.clear()
        self._posted.clear()


def batch_groups(batch: DataProto, id_key: str) -> list[Group]:
    """The groups of a verl batch: ``uid`` and the id columns from ``non_tensor_batch``, each
    rollout's reward from the first of ``REWARD_KEYS`` its tensors hold."""
    found = next((k for k in REWARD_KEYS if k in batch.batch), None)
    if found is None:
        raise ValueError(f"the batch holds no rewards (none of {', '.join(REWARD_KEYS)})")
    rewards = batch.batch[found].sum(dim=-1).tolist()
    extra = batch.non_tensor_batch
    columns = {k: extra[k] for k in BATCH_KEYS if k in extra}
    rows = [{k: v[i] for k, v in columns.items()} for i in range(len(rewards))]
    return groups(list(extra["uid"]), rows, rewards, id_key)


def _rows(data_source: Sized, id_key: str) -> Sequence[Mapping[str, Any]]:
    """The id column of every row: read from ``RLHFDataset.dataframe`` (one column, no prompt
    building), else row by row through ``__getitem__``."""
    head = id_key.split(".")[0]
    frame = getattr(data_source, "dataframe", None)
    if frame is not None and head in getattr(frame, "column_names", ()):
        return [{head: value} for value in frame[head]]
    getter: Any = data_source
    return [{head: _plain(getter[i].get(head))} for i in range(len(data_source))]


def _total_steps(data_config: DictConfig, batches_per_pass: int) -> int | None:
    """verl's last global step: ``RayPPOTrainer`` stops at ``trainer.total_training_steps``
    (else batches per pass x ``trainer.total_epochs``) and, whichever comes first, when its
    ``trainer.total_epochs`` passes are drawn; read from the whole config ``data_config`` belongs
    to (None when it belongs to none). A step count below the true one only costs ``advance``
    calls; one above it would issue a batch no step uses."""
    root = data_config._get_root() if isinstance(data_config, DictConfig) else None
    trainer = root.get("trainer") if isinstance(root, DictConfig) else None
    if root is data_config or not isinstance(trainer, DictConfig):
        return None
    epochs = trainer.get("total_epochs")
    steps = trainer.get("total_training_steps")
    if epochs is None:
        return None if steps is None else int(steps)
    by_epochs = batches_per_pass * int(epochs)
    return by_epochs if steps is None else min(int(steps), by_epochs)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


__all__ = [
    "CoordinatorSampler",
    "CoordinatorUnreachableError",
    "RoundsExhaustedError",
    "SamplerStateError",
    "UnsupportedSetupError",
    "batch_groups",
]
