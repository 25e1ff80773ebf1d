"""A progress bar for long commands, on stderr: redrawn in place on a terminal, one line every
tenth of the way otherwise (logs, CI). No dependency."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``advance(n, note)`` after each unit of work; ``close()`` at the end."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 30):
        self.total = max(1, total)
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.started = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_tenth = -1

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done = min(self.total, self.done + n)
        if self.tty:
            self.stream.write("\r" + self._line(note))
            self.stream.flush()
            return
        tenth = self.done * 10 // self.total
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(self._line(note) + "\n")
            self.stream.flush()

    def _line(self, note: str) -> str:
        share = self.done / self.total
        filled = int(share * self.width)
        elapsed = time.perf_counter() - self.started
        eta = elapsed / share - elapsed if share > 0 else 0.0
        bar = "#" * filled + "." * (self.width - filled)
        return f"{self.label} [{bar}] {share:4.0%} {elapsed:5.1f}s (eta {eta:4.0f}s) {note:<28}"

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
