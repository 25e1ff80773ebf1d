"""From a coordinator batch to TRL's generation rows, and from TRL's rewards to posted results.

Pure functions (no torch, no TRL), so the mapping is tested on its own:

- ``dataset_prompt_ids``: one prompt id per training row, by the one rule every integration uses
  (``cdas.client.prompt_ids``: the id column, else a content hash of prompt and label);
- ``generation_rows``: TRL's layout of a generation batch, each prompt's row ``G`` times in a row
  (what ``RepeatSampler`` yields and what GRPO's group normalisation reads as groups);
- ``group_results``: the ``report_results`` payload, one ``{"prompt_id", "rewards"}`` per group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from cdas.client.prompt_ids import prompt_ids


class Rows(Protocol):
    """What is read of a ``datasets.Dataset``: its columns, a column, a row by index."""

    @property
    def column_names(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, key: Any) -> Any: ...


class PromptColumnError(ValueError):
    """The dataset lacks a column the settings name (the message names it and the columns)."""


def dataset_prompt_ids(
    dataset: Rows, id_column: str | None, label_column: str | None, prompt_column: str = "prompt"
) -> list[str]:
    """The prompt id of every row, in row order. ``id_column`` must exist when given; without it
    each row gets the content hash of ``[prompt, label]`` (``label_column`` may be None)."""
    columns = list(dataset.column_names)
    for setting, name in (("id_column", id_column), ("label_column", label_column)):
        if name is not None and name not in columns:
            raise PromptColumnError(
                f"CoordinatorSettings.{setting} {name!r} is not a column of the training dataset "
                f"(its columns: {', '.join(columns)})"
            )
    if id_column is not None:
        rows: list[Mapping[str, Any]] = [{id_column: v} for v in dataset[id_column]]
        return prompt_ids(rows, id_column, prompt_column, None, [id_column])
    if prompt_column not in columns:
        raise PromptColumnError(
            f"the training dataset has no {prompt_column!r} column to hash into prompt ids "
            f"(its columns: {', '.join(columns)}); set CoordinatorSettings.id_column"
        )
    labels = dataset[label_column] if label_column else [None] * len(dataset)
    rows = [
        {prompt_column: p, "label": label}
        for p, label in zip(dataset[prompt_column], labels, strict=True)
    ]
    return prompt_ids(rows, None, prompt_column, "label", [prompt_column, "label"])


def generation_rows(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str], group_size: int
) -> list[dict[str, Any]]:
    """Each row (cut to ``keys``, the columns TRL's dataloader hands over) ``group_size`` times in
    a row; every copy a new dict, since TRL writes rollout fields into its inputs."""
    out = []
    for row in rows:
        cut = {key: row[key] for key in keys}
        out += [dict(cut) for _ in range(group_size)]
    return out


def group_results(
    ids: Sequence[str], rewards: Sequence[float], group_size: int
) -> list[dict[str, Any]]:
    """One result per group: ``rewards[i*G:(i+1)*G]`` belong to ``ids[i]``. A NaN reward (a
    completion no reward function scored) is left out; a group left empty is not reported."""
    if len(rewards) != len(ids) * group_size:
        raise ValueError(
            f"{len(rewards)} rewards for {len(ids)} prompts x {group_size} generations"
        )
    results = []
    for i, prompt_id in enumerate(ids):
        group = [float(r) for r in rewards[i * group_size : (i + 1) * group_size]]
        scored = [r for r in group if not math.isnan(r)]
        if scored:
            results.append({"prompt_id": prompt_id, "rewards": scored})
    return results
