"""The paper's training set, ``math12k``: 12,000 MATH prompts with their ground truths.

The project ships a copy at ``data/math12k.parquet`` (from the authors' public release, the same
file as ``shared/data/math12k.parquet``); ``$CDAS_MATH12K`` or ``--data`` points elsewhere.
Prompt ids are the row indexes as text ("0" .. "11999"): the file has no id column, and the row
order is the release's. Reading needs pyarrow (``cdas[sim]``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV = "CDAS_MATH12K"
SHIPPED = Path(__file__).resolve().parents[4] / "data" / "math12k.parquet"
"""``data/math12k.parquet`` at the repository root (an editable or source install)."""


def default_path() -> Path:
    """``$CDAS_MATH12K`` if set, else the repository's ``data/math12k.parquet``."""
    return Path(os.environ.get(ENV) or SHIPPED)


@dataclass(frozen=True)
class Dataset:
    """Prompt ids, the question text (for people to read) and the ground truths."""

    ids: list[str]
    questions: list[str]
    answers: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def _question(chat: list[dict[str, str]]) -> str:
    text = " ".join(m.get("content", "") for m in chat if m.get("role") == "user")
    return text.removeprefix("Question:\n").split("\nPlease reason step by step")[0].strip()


def load(path: Path | str | None = None) -> Dataset:
    """Read the parquet file; a missing file or a missing column is an error naming it."""
    where = Path(path) if path is not None else default_path()
    if not where.is_file():
        raise FileNotFoundError(
            f"math12k not found at {where}: give --data PATH or set ${ENV} "
            "(the repository ships data/math12k.parquet)"
        )
    import pyarrow.parquet as pq

    table = pq.read_table(where)
    for column in ("prompt", "reward_model"):
        if column not in table.column_names:
            raise ValueError(f"{where} has no column {column!r} (columns: {table.column_names})")
    prompts = table.column("prompt").to_pylist()
    truths = table.column("reward_model").to_pylist()
    return Dataset(
        ids=[str(i) for i in range(table.num_rows)],
        questions=[_question(p) for p in prompts],
        answers=[str((t or {}).get("ground_truth", "")) for t in truths],
    )
