"""Strategy parameters as command lines give them: ``--param key=value``, repeated.

The rollout worker (``cdas-rollout --param``) and the OpenRLHF launcher
(``cdas-openrlhf --coordinator.param``) read them the same way: a value is JSON when it parses as
JSON (``warmup=false``, ``threshold=0.25``, ``schedule=[[1, 3]]``), else text (``name=x y``). The
coordinator validates names and values when the run is created.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def parse_param(item: str, flag: str = "--param") -> tuple[str, Any]:
    """One ``key=value``; a ``ValueError`` names the flag and the item when it is not one."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{flag} {item!r} is not key=value")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def parse_params(items: Iterable[str], flag: str = "--param") -> dict[str, Any]:
    """Every ``key=value`` of a repeated flag, later keys overriding earlier ones."""
    return dict(parse_param(item, flag) for item in items)
