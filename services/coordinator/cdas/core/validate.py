"""Small validators shared by the core, the stores and the coordinator.

Each raises ``InvalidArgumentError`` whose message names the field and the bad value, so that a
rejected call explains itself and changes nothing.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeGuard

from cdas.core.errors import InvalidArgumentError

MAX_STEP = 2**31 - 1
"""Steps (and rounds) are integers in [0, 2**31 - 1]; a prompt's last step is stored in 32 bits."""

MAX_ID_BYTES = 256
"""A prompt id is a string of 1 to 256 bytes (UTF-8)."""

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""A run id, whole (``fullmatch``): 1-128 letters, digits and ``._:-``, starting with a letter or
digit. The REST door's OpenAPI document states this pattern."""


def describe(value: Any) -> str:
    """A short printable form of a value for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_int(value: Any) -> bool:
    """True for real integers (``bool`` and integral floats are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(field: str, value: Any, low: int, high: int) -> int:
    if not is_int(value) or not low <= value <= high:
        raise InvalidArgumentError(
            f"{field} is {describe(value)}; it must be an integer in [{low}, {high}]",
            field=field,
            value=describe(value),
        )
    return int(value)


def check_step(value: Any, field: str = "step") -> int:
    if not is_int(value) or not 0 <= value <= MAX_STEP:
        raise InvalidArgumentError(
            f"{field} is {describe(value)}; it must be an integer in [0, {MAX_STEP}]",
            field=field,
            value=describe(value),
        )
    return int(value)


def is_real(value: Any) -> TypeGuard[float]:
    """True for a finite ``int`` or ``float`` that a float can hold (not ``bool``, NaN, the
    infinities, nor an integer too large for a float, such as a JSON literal of 400 digits)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past the largest float
        return False


def check_number(field: str, value: Any, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite real number in [low, high] (NaN, infinities and integers too large for a float
    are rejected)."""
    if not is_real(value) or not low <= value <= high:
        bounds = "" if math.isinf(low) and math.isinf(high) else f" in [{low:g}, {high:g}]"
        raise InvalidArgumentError(
            f"{field} is {describe(value)}; it must be a finite number{bounds}",
            field=field,
            value=describe(value),
        )
    return float(value)


def check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or RUN_ID.fullmatch(run_id) is None:
        raise InvalidArgumentError(
            f"run id {describe(run_id)} is invalid; use 1-128 characters of letters, digits and "
            "'._:-', starting with a letter or digit",
            field="run_id",
            value=describe(run_id),
        )
    return run_id


def check_prompt_id(prompt_id: Any, field: str = "prompt_id") -> str:
    if not isinstance(prompt_id, str):
        raise InvalidArgumentError(
            f"{field} is {describe(prompt_id)}; a prompt id is a string",
            field=field,
            value=describe(prompt_id),
        )
    size = len(prompt_id.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= MAX_ID_BYTES:
        raise InvalidArgumentError(
            f"{field} {describe(prompt_id)} is {size} bytes long; a prompt id has 1 to "
            f"{MAX_ID_BYTES} bytes",
            field=field,
            value=describe(prompt_id),
        )
    return prompt_id
