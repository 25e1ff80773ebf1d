"""The coordinator-backed prompt loader that stands in for OpenRLHF's prompts dataloader.

OpenRLHF 0.11.2 draws prompts one dataloader item at a time (``_collect_prompt_batch``): B items
start a step, and with ``--algo.dynamic_filtering_enable`` one more item replaces each group the
filter drops. The loader maps those draws onto coordinator calls:

- draw d of step t (0-based, within the step) comes from round r = 0 at position d when d < B, else
  from round r = ceil(j / B) at position (j - 1) mod B, where j = d - B + 1 is the refill's number.
  Every round is asked for with size B, so a step regenerated after a crash asks for exactly the
  (step, round, size) it asked before and gets the same prompts (``next_batch`` is idempotent);
- a step may use rounds 0 .. ``max_rounds`` - 1. When they run out, or the coordinator refuses a
  further round (the ``dynamic`` strategy's own ``max_rounds``, or no unissued prompt left), the
  iterator stops: OpenRLHF then trains on the groups it kept and starts a new episode;
- one ``iter()`` is one episode of ``steps_per_episode`` steps (OpenRLHF ends an episode when the
  iterator is exhausted); an episode cut short by the round cap ends there (OpenRLHF reads the
  stop as the episode's end), and the next ``iter()`` starts a full one.

Each item is one prompt in the collate format of ``PromptDataset``
(``([datasource], [prompt], [label], [image])``), because the batch-collecting helper keeps only
the first item of a longer batch when it refills.

Results: ``record_group`` takes each complete group of G rewards (``generator``), and the pending
ones are posted before a further round is fetched (``flush``: ``report_results``) and when the
step ends (``end_step``), so the coordinator has seen every group, the dropped ones included,
before it chooses again. The loader is both the step's last post and the next step's first ask,
in one process, with the size B: when the episode has a step after this one (OpenRLHF then draws
it), ``end_step`` posts with ``advance(run, t, pending, B)``, whose answer is step t + 1's round 0
(what ``report_results`` then ``next_batch`` would answer, in one call). At an episode's last step
it posts with ``report_results``: whether OpenRLHF starts another episode is its own count, so
the next episode's first step asks with ``next_batch``, as does a resumed one. Posting is
idempotent per (step, prompt id): a retried or regenerated step's results are counted as
duplicates and change nothing.

``state_dict``/``load_state_dict`` carry the step (and the episode's end) inside OpenRLHF's
checkpoints, so a resumed run asks for the step it stopped at.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from cdas.core.api import Batches
from cdas.core.errors import InvalidArgumentError
from cdas.core.views import ReportOutcome

log = logging.getLogger("cdas_openrlhf")

Item = tuple[list[Any], list[str], list[Any], list[Any]]
"""One dataloader item: ([datasource], [prompt], [label], [image])."""


class PromptRows(Protocol):
    """What the loader reads of OpenRLHF's ``PromptDataset``: rows of
    (datasource, prompt, label, image) by index."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Any, str, Any, Any]: ...


BatchClient = Batches
"""The step calls the loader makes, ``next_batch``, ``report_results`` and ``advance``
(``cdas.core.api``: ``cdas.Coordinator`` or a client)."""


class LoaderStateError(ValueError):
    """A checkpoint's loader state belongs to another run or batch size."""


class CoordinatorPromptLoader:
    def __init__(
        self,
        client: BatchClient,
        run_id: str,
        rows: PromptRows,
        ids: Sequence[str],
        batch_size: int,
        *,
        max_rounds: int = 10,
        steps_per_episode: int | None = None,
    ) -> None:
        if len(ids) != len(rows):
            raise ValueError(f"{len(ids)} prompt ids for {len(rows)} dataset rows")
        if batch_size < 1 or batch_size > len(rows):
            raise ValueError(
                f"rollout batch size {batch_size} must be between 1 and the {len(rows)} prompts"
            )
        self.client = client
        self.run_id = run_id
        self.rows = rows
        self.ids = list(ids)
        self.row_of = {prompt_id: row for row, prompt_id in enumerate(self.ids)}
        self.batch_size = batch_size
        self.max_rounds = max_rounds
        self.steps_per_episode = steps_per_episode or max(1, len(rows) // batch_size)
        self.step = 0
        """The coordinator step the next draw belongs to (OpenRLHF's global step at generation
        time, while no step came back empty)."""
        self.applied = 0
        self.duplicates = 0
        self._episode_end: int | None = None
        self._episode_over = False
        self._drawn = 0
        self._rounds: dict[int, list[str]] = {}
        self._served: defaultdict[tuple[str, str], deque[str]] = defaultdict(deque)
        self._pending: list[dict[str, Any]] = []

    # -- the dataloader face OpenRLHF sees ------------------------------------------------------

    def __len__(self) -> int:
        """Prompts per episode (OpenRLHF's progress bar and step count read it)."""
        return self.steps_per_episode * self.batch_size

    def __iter__(self) -> Iterator[Item]:
        """One episode. An iterator that finds its episode already complete (a checkpoint taken
        after the episode's last step) yields nothing, as OpenRLHF's restored dataloader does, so
        the resumed ``fit`` moves on to the next episode; the next ``iter()`` starts it."""
        if self._episode_end is None or (self.step >= self._episode_end and self._episode_over):
            self._episode_end = self.step + self.steps_per_episode
            self._episode_over = False
        return self._items(self._episode_end)

    def state_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "batch_size": self.batch_size,
            "step": self.step,
            "episode_end": self._episode_end,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, mine in (("run_id", self.run_id), ("batch_size", self.batch_size)):
            if state.get(key) != mine:
                raise LoaderStateError(
                    f"the checkpoint's loader has {key} {state.get(key)!r}, this run has {mine!r}"
                )
        self.step = int(state["step"])
        self._episode_end = state.get("episode_end")
        self._episode_over = False
        self._drawn = 0
        self._rounds.clear()
        self._served.clear()
        self._pending.clear()

    # -- steps and results ----------------------------------------------------------------------

    def record_group(self, prompt: str, label: Any, rewards: Sequence[float]) -> str:
        """Queue one complete group's rewards for the prompt served this step; returns its id."""
        queue = self._served.get((prompt, _key(label)))
        if not queue:
            raise KeyError(
                f"a group came back for a prompt not served in step {self.step}: {prompt[:80]!r}"
            )
        prompt_id = queue.popleft()
        self._pending.append({"prompt_id": prompt_id, "rewards": [float(r) for r in rewards]})
        return prompt_id

    def flush(self) -> None:
        """Post the queued groups of the current step (retried by the client; idempotent)."""
        if not self._pending:
            return
        self._count(self.client.report_results(self.run_id, self.step, self._pending))
        self._pending = []

    def end_step(self) -> None:
        """Post what is left of the step and move on, unless nothing was drawn (an empty call at
        the end of an episode is not a step). When the episode has a step after this one, the
        post is ``advance``, and its answer is that step's round 0."""
        if self._drawn == 0:
            return
        following = None
        if self._episode_end is not None and self.step + 1 < self._episode_end:
            answer = self.client.advance(self.run_id, self.step, self._pending, self.batch_size)
            self._count(answer.report)
            self._pending = []
            following = list(answer.batch.prompt_ids)
        else:
            self.flush()
        self.step += 1
        self._drawn = 0
        self._rounds.clear()
        self._served.clear()
        if following is not None:
            self._rounds[0] = following

    def _count(self, outcome: ReportOutcome) -> None:
        self.applied += outcome.applied
        self.duplicates += outcome.duplicates

    # -- drawing --------------------------------------------------------------------------------

    def _items(self, end: int) -> Iterator[Item]:
        while True:
            if self._drawn == 0 and self.step >= end:
                self._episode_over = True
                return
            item = self._draw()
            if item is None:
                self._episode_end = None  # the next iter() starts a full episode
                return
            yield item

    def _draw(self) -> Item | None:
        b, d = self.batch_size, self._drawn
        round_, position = (0, d) if d < b else ((d - b) // b + 1, (d - b) % b)
        if round_ >= self.max_rounds:
            log.warning(
                "step %d used its %d rounds; training on the groups kept", self.step, round_
            )
            return None
        ids = self._rounds.get(round_)
        if ids is None:
            self.flush()  # the coordinator sees the dropped groups before it chooses again
            try:
                ids = self.client.next_batch(self.run_id, self.step, b, round_).prompt_ids
            except InvalidArgumentError as error:
                if round_ == 0:
                    raise
                log.warning("step %d: no round %d (%s)", self.step, round_, error)
                return None
            self._rounds[round_] = list(ids)
        prompt_id = ids[position]
        try:
            row = self.row_of[prompt_id]
        except KeyError:
            raise LoaderStateError(
                f"the coordinator served prompt id {prompt_id!r}, which no row of this dataset "
                f"has: run {self.run_id!r} was registered with another prompt set"
            ) from None
        datasource, prompt, label, image = self.rows[row]
        self._served[(prompt, _key(label))].append(prompt_id)
        self._drawn += 1
        return [datasource], [prompt], [label], [image]


def _key(label: Any) -> str:
    """Labels may be any JSON value; the lookup key is its text."""
    return label if isinstance(label, str) else repr(label)
