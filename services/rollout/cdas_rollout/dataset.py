"""Prompt sets: ids, prompts and ground truths, from parquet or JSON-lines files.

Two layouts are read:

- math12k (the paper's training set, ``shared/data/math12k.parquet``) and other verl-style files:
  columns ``data_source``, ``prompt`` (a chat: a list of ``{"role", "content"}``), ``ability``,
  ``reward_model`` (``{"ground_truth", "style"}``), and no id column. The answer is
  ``reward_model.ground_truth``.
- any parquet or ``.jsonl`` file with configurable keys: ``prompt_key`` (text or a chat),
  ``answer_key`` (a column, or ``a.b`` for a field of a struct column) and ``id_key``.

Prompt ids: the id column when there is one, else the row index as text ("0", "1", ...). That is
what ``cdas.sim.dataset`` registers for math12k, so a run created by ``cdas simulate`` or
``cdas demo`` and this worker agree on what "42" means.

A chat prompt becomes model input text through the tokenizer's chat template (with the generation
prompt) when the tokenizer has one, else the user turns' contents joined by blank lines: see
``PromptFormatter``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Chat = list[dict[str, str]]
Prompt = str | Chat

DEFAULT_ID_KEY = "id"
DEFAULT_PROMPT_KEY = "prompt"
DEFAULT_ANSWER_KEYS = ("reward_model.ground_truth", "answer", "ground_truth", "solution")
"""Tried in this order when no ``answer_key`` is given (math12k's first)."""


@dataclass(frozen=True)
class Example:
    prompt_id: str
    prompt: Prompt
    answer: str


@dataclass(frozen=True)
class Dataset:
    """The examples in file order, and an index by prompt id."""

    examples: list[Example]
    source: str = ""

    def __post_init__(self) -> None:
        index: dict[str, Example] = {}
        for example in self.examples:
            if example.prompt_id in index:
                raise ValueError(f"{self.source}: prompt id {example.prompt_id!r} appears twice")
            index[example.prompt_id] = example
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    @property
    def ids(self) -> list[str]:
        return [e.prompt_id for e in self.examples]

    def __getitem__(self, prompt_id: str) -> Example:
        index: dict[str, Example] = self._index  # type: ignore[attr-defined]
        try:
            return index[prompt_id]
        except KeyError:
            raise KeyError(
                f"prompt id {prompt_id!r} is not in {self.source or 'the dataset'} "
                f"({len(self)} prompts): does the run's prompt set match --data?"
            ) from None


def load_dataset(
    path: str | Path,
    *,
    prompt_key: str = DEFAULT_PROMPT_KEY,
    answer_key: str | None = None,
    id_key: str | None = None,
    limit: int | None = None,
) -> Dataset:
    """Read a ``.parquet`` or ``.jsonl`` prompt set (see the module docstring).

    ``id_key`` None: the ``id`` column when present, else row indexes. ``answer_key`` None: the
    first of ``DEFAULT_ANSWER_KEYS`` present. ``limit`` keeps the first rows only. Errors name the
    file and the missing key or bad row.
    """
    where = Path(path)
    if not where.is_file():
        raise FileNotFoundError(f"prompt set not found: {where}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    suffix = where.suffix.lower()
    if suffix == ".parquet":
        rows = _parquet_rows(where, limit)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(where, limit)
    else:
        raise ValueError(f"{where}: unknown prompt set format {suffix!r}; use .parquet or .jsonl")
    if not rows:
        raise ValueError(f"{where} holds no rows")
    keys = set(rows[0])
    if prompt_key not in keys:
        raise ValueError(f"{where} has no prompt key {prompt_key!r} (keys: {sorted(keys)})")
    if answer_key is None:
        answer_key = next((k for k in DEFAULT_ANSWER_KEYS if _has(rows[0], k)), None)
        if answer_key is None:
            raise ValueError(
                f"{where} has none of the answer keys {list(DEFAULT_ANSWER_KEYS)} "
                f"(keys: {sorted(keys)}); give --answer-key"
            )
    elif not _has(rows[0], answer_key):
        raise ValueError(f"{where} has no answer key {answer_key!r} (keys: {sorted(keys)})")
    if id_key is None:
        id_key = DEFAULT_ID_KEY if DEFAULT_ID_KEY in keys else None
    elif id_key not in keys:
        raise ValueError(f"{where} has no id key {id_key!r} (keys: {sorted(keys)})")
    examples = []
    for index, row in enumerate(rows):
        if id_key is None:
            prompt_id = str(index)
        elif row.get(id_key) is None:
            raise ValueError(f"{where} row {index}: no id under {id_key!r}")
        else:
            prompt_id = str(row[id_key])
        examples.append(
            Example(
                prompt_id=prompt_id,
                prompt=_prompt(row.get(prompt_key), where, index),
                answer=_answer(row, where, index, answer_key),
            )
        )
    return Dataset(examples, source=str(where))


def _parquet_rows(where: Path, limit: int | None) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(where)
    if limit is not None:
        table = table.slice(0, limit)
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def _jsonl_rows(where: Path, limit: int | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with where.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{where}:{number}: not JSON: {exc}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}:{number}: a row must be a JSON object")
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    return rows


def _get(row: Mapping[str, Any], key: str) -> Any:
    """``row[key]``, or a struct field for a dotted key (``reward_model.ground_truth``)."""
    if key in row:
        return row[key]
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(key)
        value = value[part]
    return value


def _has(row: Mapping[str, Any], key: str) -> bool:
    try:
        _get(row, key)
    except KeyError:
        return False
    return True


def _prompt(value: Any, where: Path, index: int) -> Prompt:
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and value and all(isinstance(m, Mapping) for m in value):
        chat: Chat = []
        for message in value:
            role, content = message.get("role"), message.get("content")
            if not isinstance(role, str) or not isinstance(content, str):
                raise ValueError(f"{where} row {index}: a chat message needs role and content")
            chat.append({"role": role, "content": content})
        return chat
    raise ValueError(
        f"{where} row {index}: the prompt is neither text nor a chat (list of role/content)"
    )


def _answer(row: Mapping[str, Any], where: Path, index: int, key: str) -> str:
    try:
        value = _get(row, key)
    except KeyError:
        value = None
    if value is None:
        raise ValueError(f"{where} row {index}: no answer under {key!r}")
    return str(value)


def chat_to_text(chat: Chat) -> str:
    """A chat without a template: the user turns' contents, blank-line separated."""
    return "\n\n".join(m["content"] for m in chat if m.get("role") == "user")


class PromptFormatter:
    """Turns a dataset prompt into the model's input text.

    Text is used as is. A chat goes through ``tokenizer.apply_chat_template(chat,
    add_generation_prompt=True, tokenize=False)`` when a tokenizer with a chat template is given
    (what the model was tuned on, so what it should see), else ``chat_to_text``.
    """

    def __init__(self, tokenizer: Any | None = None) -> None:
        self.tokenizer = tokenizer
        self.templated = tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))

    def __call__(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        if self.templated:
            text = self.tokenizer.apply_chat_template(  # type: ignore[union-attr]
                prompt, tokenize=False, add_generation_prompt=True
            )
            return str(text)
        return chat_to_text(prompt)
