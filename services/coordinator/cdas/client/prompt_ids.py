"""Stable prompt ids for the rows of a training dataset: the one rule every trainer integration
uses (``cdas_openrlhf``, ``cdas_trl``), so the same dataset gives the same ids in each.

The coordinator keys every prompt's difficulty by id, so an id must name the same prompt in every
process, after every restart and whatever order the rows are loaded in:

- a dataset with an id column (``id_key``: ``--coordinator.id_key`` in ``cdas-openrlhf``,
  ``CoordinatorSettings.id_column`` in ``cdas_trl``) uses it, as text;
- a dataset without one gets a content hash: the first 16 hex digits of SHA-256 over the JSON of
  the row's prompt and label (``[row[input_key], row[label_key]]``, keys sorted). The same prompt
  keeps its id when the file is shuffled, filtered or concatenated with others. Identical rows
  (the same prompt and label twice) are told apart by order: the second gets ``<hash>-1``.

Standard library only: the coordinator's package carries it, and the trainer side imports it from
here (``cdas.client.prompt_ids``). O(N) time and memory for N rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

HASH_DIGITS = 16
MAX_ID_BYTES = 256


class PromptIdError(ValueError):
    """The id column cannot serve as prompt ids (the message names the row and the value)."""


def content_id(prompt: Any, label: Any) -> str:
    """The content hash of one row (see the module docstring)."""
    text = json.dumps([prompt, label], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_DIGITS]


def prompt_ids(
    rows: Iterable[Mapping[str, Any]],
    id_key: str | None,
    input_key: str,
    label_key: str | None,
    columns: Iterable[str] | None = None,
) -> list[str]:
    """One id per row, in row order: the ``id_key`` column when the rows have it, else hashes.

    ``columns`` (a datasets ``column_names``) decides up front; without it the first row does.
    Raises ``PromptIdError`` on an empty, too long or repeated id in the column.
    """
    rows = list(rows)
    if columns is None:
        columns = rows[0].keys() if rows else ()
    if id_key and id_key in set(columns):
        ids = [str(row[id_key]) for row in rows]
        seen: dict[str, int] = {}
        for index, value in enumerate(ids):
            if not value or len(value.encode()) > MAX_ID_BYTES:
                raise PromptIdError(
                    f"row {index}: id column {id_key!r} holds {value!r}; ids must be 1-256 bytes"
                )
            if value in seen:
                raise PromptIdError(
                    f"rows {seen[value]} and {index} have the same {id_key!r}: {value!r}"
                )
            seen[value] = index
        return ids
    counts: dict[str, int] = {}
    out = []
    for row in rows:
        digest = content_id(row.get(input_key), row.get(label_key) if label_key else None)
        k = counts.get(digest, 0)
        counts[digest] = k + 1
        out.append(digest if k == 0 else f"{digest}-{k}")
    return out
