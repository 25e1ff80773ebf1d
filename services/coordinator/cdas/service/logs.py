"""Structured logs: one JSON object per line on stderr (``ts``, ``level``, ``logger``, ``msg`` and
the call's fields), so that log shippers index them without parsing prose."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


access = logging.getLogger("cdas.access")
"""One line per call: door, operation, status, duration_ms."""

log = logging.getLogger("cdas.service")
"""Lifecycle: serving, draining, stopped, readiness changes, unhandled errors."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "color_message" and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "info") -> None:
    """Route the service's, uvicorn's and grpc's loggers to JSON lines on stderr; ``level``
    applies to access lines and libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The service writes its own access lines (with durations).
    logging.getLogger("uvicorn.access").disabled = True
    # Lifecycle lines (serving, draining, stopped) are written at any level: supervisors and
    # tests read the bound ports from "serving".
    log.setLevel(logging.INFO)
