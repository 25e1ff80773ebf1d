"""From dataset rows to prompt ids, and from a verl batch to the groups posted to the coordinator.

Pure functions over plain values (no torch, no verl), so the mapping is tested on its own:

- ``row_id``: a row's prompt id, read at a dotted path (``extra_info.index``). verl's
  ``_get_gen_batch`` moves every dataset column but ``data_source``, ``reward_model`` and
  ``extra_info`` out of the batch that later carries the rewards, so the id has to live in one of
  those for the sampler to tell which prompt a group belongs to;
- ``dataset_prompt_ids``: every row's id, refused when one is missing, empty, too long or repeated;
- ``groups``: the rollouts of a batch grouped by verl's ``uid`` (one per prompt copy, its
  ``rollout.n`` responses), each with its prompt id and its rewards in rollout order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cdas.client.prompt_ids import MAX_ID_BYTES, PromptIdError


class MissingIdError(PromptIdError):
    """A row has nothing at the id path (the message names the path and the row)."""


def row_id(row: Mapping[str, Any], path: str) -> str:
    """The value at ``path`` (dotted: ``extra_info.index``) as text; ``KeyError`` when absent."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping) or value.get(part) is None:
            raise KeyError(path)
        value = value[part]
    return str(value)


def dataset_prompt_ids(rows: Sequence[Mapping[str, Any]], path: str, setting: str) -> list[str]:
    """One id per row, in row order. ``setting`` names the key in messages."""
    ids: list[str] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        try:
            value = row_id(row, path)
        except KeyError:
            raise MissingIdError(
                f"row {index} of the training data has no {path!r} ({setting}); give every row an "
                "id there (verl's preprocessing scripts write extra_info.index; "
                "python -m cdas_verl.prepare adds one)"
            ) from None
        if not value or len(value.encode()) > MAX_ID_BYTES:
            raise PromptIdError(f"row {index}: {path!r} holds {value!r}; ids must be 1-256 bytes")
        if value in seen:
            raise PromptIdError(
                f"rows {seen[value]} and {index} have the same {path!r} ({value!r}); {setting} "
                "must name a unique id per row"
            )
        seen[value] = index
        ids.append(value)
    return ids


@dataclass(frozen=True)
class Group:
    """One prompt's rollouts in a batch: verl's uid, the prompt id, the rewards."""

    uid: str
    prompt_id: str
    rewards: tuple[float, ...]


def groups(
    uids: Sequence[Any], rows: Sequence[Mapping[str, Any]], rewards: Sequence[float], path: str
) -> list[Group]:
    """The groups of a batch, in the order their first rollout appears. ``rows[i]`` holds rollout
    i's id columns (``BATCH_KEYS``), ``rewards[i]`` its reward. A NaN reward is left out; a group
    left empty is not returned."""
    if not len(uids) == len(rows) == len(rewards):
        raise ValueError(f"{len(uids)} uids, {len(rows)} rows and {len(rewards)} rewards")
    order: list[str] = []
    ids: dict[str, str] = {}
    scored: dict[str, list[float]] = {}
    for uid, row, reward in zip(uids, rows, rewards, strict=True):
        key = str(uid)
        prompt_id = row_id(row, path)
        if key not in ids:
            order.append(key)
            ids[key], scored[key] = prompt_id, []
        elif ids[key] != prompt_id:
            raise ValueError(f"uid {key!r} holds rollouts of {ids[key]!r} and {prompt_id!r}")
        if not math.isnan(float(reward)):
            scored[key].append(float(reward))
    return [Group(uid, ids[uid], tuple(scored[uid])) for uid in order if scored[uid]]
