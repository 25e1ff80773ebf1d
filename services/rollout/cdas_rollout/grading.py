"""Grading model answers against a math ground truth with math-verify (``pip install math-verify``).

A rollout's reward is 1.0 when the content of its *last* ``\\boxed{...}`` (or ``\\fbox{...}``) is
mathematically equal to the ground truth, else 0.0. Why the last box: math12k's prompts ask the
model to "put your final answer within \\boxed{}", and a reasoning chain may box intermediate
results before the final one. An answer with no box gets 0.0: the format is part of the task, and
grading free text would reward a number that merely appears in the reasoning.

Equality is math-verify's: both sides are parsed from LaTeX into SymPy (``math_verify.parse``) and
compared by ``math_verify.verify(gold, prediction)`` (numerically to 6 decimals, symbolically, as
sets or intervals, ...), so ``\\frac{1}{2}``, ``\\dfrac{1}{2}``, ``0.5`` and ``1/2`` are one answer.
``verify`` is not symmetric; the gold goes first.

Never raises on what a model writes: garbage, unbalanced braces, empty text, huge text all grade
0.0 (a grader that throws would lose the whole step's results).

Threads: math-verify bounds each parse and comparison with ``signal.alarm``, which only works in
the main thread of the main interpreter (elsewhere it raises ValueError). ``grade`` therefore
passes the timeouts only when it runs in the main thread and passes ``None`` (no alarm) in any
other thread; there the length caps below (``MAX_ANSWER_CHARS``) are what keeps a pathological
answer from running for long. The worker grades in its main thread, with the timeouts.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from math_verify.errors import TimeoutException

MAX_ANSWER_CHARS = 1000
"""A boxed answer longer than this is graded 0.0 without parsing: no math12k ground truth is
anywhere near it, and SymPy time grows fast with expression size."""

MAX_COMPLETION_CHARS = 200_000
"""Only the tail of a longer completion is searched for the final box."""

TIMEOUT_SECONDS = 5
"""math-verify's alarm for each parse and each comparison (main thread only)."""

_BOX_COMMANDS = ("\\boxed", "\\fbox")

# math-verify logs a warning when timeouts are disabled (in threads) and on every timeout; the
# reward already says it, and a worker grading thousands of answers must not flood its log.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` / ``\\fbox{...}`` in ``text`` (braces matched),
    ``\\boxed 5`` (the space form) too; ``None`` if there is no complete box."""
    text = text[-MAX_COMPLETION_CHARS:]
    start = max(text.rfind(command) for command in _BOX_COMMANDS)
    while start >= 0:
        content = _box_content(text, start)
        if content is not None:
            return content
        # an unclosed last box: look for an earlier complete one
        start = max(text.rfind(command, 0, start) for command in _BOX_COMMANDS)
    return None


def _box_content(text: str, start: int) -> str | None:
    command = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
    i = start + len(command)
    if i < len(text) and text[i] == " ":  # "\boxed 5": the argument runs to the next space/$
        tail = text[i + 1 :]
        end = len(tail)
        for stop in (" ", "$", "\n"):
            at = tail.find(stop)
            if at != -1:
                end = min(end, at)
        return tail[:end] or None
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def _timeouts(seconds: int) -> int | None:
    """math-verify's timeout argument: the signal alarm only where signals can be used."""
    if seconds > 0 and threading.current_thread() is threading.main_thread():
        return seconds
    return None


@functools.lru_cache(maxsize=65536)
def _parse_gold(ground_truth: str, timeout: int | None) -> tuple[Any, ...]:
    """The ground truth parsed once (SymPy objects are immutable, so sharing them across threads
    is safe). Wrapped in a box so the LaTeX extractor takes it whole."""
    parsed = parse(
        "\\boxed{" + ground_truth + "}",
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0)],
        parsing_timeout=timeout,  # None disables the alarm
    )
    return tuple(parsed)


def _parse_answer(answer: str, timeout: int | None) -> list[Any]:
    parsed = parse(
        "\\boxed{" + answer + "}",
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
        parsing_timeout=timeout,  # None disables the alarm
    )
    return list(parsed)


def grade(completion: str, ground_truth: str, *, timeout_seconds: int = TIMEOUT_SECONDS) -> float:
    """1.0 when the last boxed answer of ``completion`` equals ``ground_truth``, else 0.0.

    Never raises (a grading failure is a wrong answer); safe from any thread.
    """
    try:
        answer = last_boxed(completion)
        if answer is None or not answer.strip() or len(answer) > MAX_ANSWER_CHARS:
            return 0.0
        if not isinstance(ground_truth, str) or not ground_truth.strip():
            return 0.0
        timeout = _timeouts(timeout_seconds)
        gold = _parse_gold(ground_truth, timeout)
        if not gold:
            return 0.0
        prediction = _parse_answer(answer, timeout)
        if not prediction:
            return 0.0
        equal = verify(
            list(gold),
            prediction,
            timeout_seconds=timeout,
        )
        return 1.0 if equal else 0.0
    except (Exception, TimeoutException):  # garbage in, reward 0: never lose a step to one answer
        logging.getLogger(__name__).debug("grading failed", exc_info=True)
        return 0.0


def grade_group(
    completions: list[str], ground_truth: str, *, timeout_seconds: int = TIMEOUT_SECONDS
) -> list[float]:
    """The rewards of one prompt's G completions."""
    return [grade(c, ground_truth, timeout_seconds=timeout_seconds) for c in completions]
