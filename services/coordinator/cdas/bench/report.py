"""Printing benchmark results: one table layout and one target line for every benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO


def table(columns: Sequence[tuple[str, int]], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Right-aligned columns (title, width) under a rule, one printed line per row."""
    head = "  ".join(f"{title:>{width}}" for title, width in columns)
    print(head, file=out)
    print("-" * len(head), file=out)
    for row in rows:
        print(
            "  ".join(f"{cell:>{width}}" for cell, (_, width) in zip(row, columns, strict=True)),
            file=out,
        )


def target(text: str, met: bool) -> str:
    """A target line: ``[met]`` or ``[MISSED]`` and the measured figure."""
    return f"  [{'met' if met else 'MISSED'}] {text}"
