"""The difficulty export as files: pages of prompts (``PromptPage``) written as CSV or Parquet one
page at a time, so a run of 10^7 prompts is written in memory of one page.

Both formats have the same six columns, always in this order, ``label`` included when the run has
no labels (empty), so exports of different runs read and concatenate alike:

    prompt_id (text), difficulty (float64), updates (int64), last_pass_rate (float64, empty when
    updates is 0), last_step (int64, empty when updates is 0), label (float64, empty when none)

CSV is the standard library's (RFC 4180 quoting; floats written with ``repr``, so they read back
bit for bit); Parquet needs pyarrow (``pip install pyarrow``, or the ``sim`` extra) and holds one
row group per page. The REST door streams the same CSV (``GET /v1/runs/{run_id}/prompts`` with
``Accept: text/csv``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cdas.core.views import PromptPage

COLUMNS = ("prompt_id", "difficulty", "updates", "last_pass_rate", "last_step", "label")
"""The export's columns, in file order (``PromptInfo``'s fields)."""

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""File suffix -> format."""


class ExportError(RuntimeError):
    """The export cannot be written as asked (unknown format, pyarrow missing)."""


def csv_text(page: PromptPage, header: bool = False) -> str:
    """One page as CSV lines (with the header line first when ``header``). O(page)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(COLUMNS)
    c = page.columns
    labels = c.label if c.label is not None else [None] * len(c)
    # csv writes None as an empty field and a float with repr (exact)
    columns = (c.prompt_id, c.difficulty, c.updates, c.last_pass_rate, c.last_step, labels)
    writer.writerows(zip(*columns, strict=True))
    return out.getvalue()


def format_of(path: str | os.PathLike[str]) -> str:
    """``csv`` or ``parquet``, from the file's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(
            f"{os.fspath(path)!r} ends in {suffix or 'no suffix'}; name a .csv or .parquet file"
        )
    return FORMATS[suffix]


def write(
    pages: Iterable[PromptPage],
    path: str | os.PathLike[str],
    on_page: Callable[[PromptPage], None] | None = None,
) -> int:
    """Write ``pages`` to ``path`` as CSV or Parquet (by its suffix), one page at a time;
    returns the prompts written. The file appears whole or not at all (written next to it, then
    renamed), so a failed export leaves no truncated file. ``on_page``: told of each page."""
    kind = format_of(path)
    writer = _ParquetFile if kind == "parquet" else _CsvFile
    if kind == "parquet":
        _pyarrow()  # before anything is read: a missing pyarrow is said at once
    target = Path(path)
    tmp = str(target.with_name(f".{target.name}.{os.getpid()}.partial"))
    rows = 0
    try:
        with writer(tmp) as out:
            for page in pages:
                out.add(page)
                rows += len(page.columns)
                if on_page is not None:
                    on_page(page)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows


class _CsvFile:
    def __init__(self, path: str) -> None:
        self.file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.file.write(",".join(COLUMNS) + "\n")

    def add(self, page: PromptPage) -> None:
        self.file.write(csv_text(page))

    def __enter__(self) -> _CsvFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ExportError(
            "writing Parquet needs pyarrow (pip install pyarrow, or cdas[sim]); "
            "a .csv file needs nothing"
        ) from exc
    return pa, pq


class _ParquetFile:
    """A Parquet file written one row group per page."""

    def __init__(self, path: str) -> None:
        self.pa, pq = _pyarrow()
        pa = self.pa
        self.schema = pa.schema(
            [
                ("prompt_id", pa.string()),
                ("difficulty", pa.float64()),
                ("updates", pa.int64()),
                ("last_pass_rate", pa.float64()),
                ("last_step", pa.int64()),
                ("label", pa.float64()),
            ]
        )
        self.writer = pq.ParquetWriter(path, self.schema)

    def add(self, page: PromptPage) -> None:
        c = page.columns
        if not len(c):
            return
        labels = c.label if c.label is not None else [None] * len(c)
        table = self.pa.Table.from_arrays(
            [
                self.pa.array(values, type=column.type)
                for values, column in zip(
                    (c.prompt_id, c.difficulty, c.updates, c.last_pass_rate, c.last_step, labels),
                    self.schema,
                    strict=True,
                )
            ],
            schema=self.schema,
        )
        self.writer.write_table(table)

    def __enter__(self) -> _ParquetFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()
