"""Group results as clients post them, validated and reduced to arrays.

A result is one prompt's group of G rollouts at one step, in one of three forms (the contract):

* ``{"prompt_id", "correct": k, "total": G}``: k of G rollouts correct;
* ``{"prompt_id", "rewards": [r_1, ..., r_G]}``: a rollout is correct when r_i > threshold (run
  param, default 0.5; applied by the engine, ``ParsedResults.pass_rates``, so that a request is
  parsed once, before its run is read);
* ``{"prompt_id", "pass_rate": p, "total": G}``.

From each we keep the pass rate s in [0, 1], the rollouts spent G, and whether the group is
zero-gradient (all rewards equal, so GRPO's advantages vanish): k in {0, G}, p in {0, 1}, or
max(r) == min(r). The whole request is validated before anything is applied: one bad result
rejects the request, with a message naming its position, field and value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from cdas.core.errors import InvalidArgumentError
from cdas.core.ids import canonical_ints
from cdas.core.validate import check_prompt_id, describe, is_int, is_real

MAX_ROLLOUTS = 1 << 20
"""Largest group (rollouts per prompt) accepted in one result."""

_FIELDS = frozenset({"prompt_id", "correct", "total", "rewards", "pass_rate"})


@dataclass(frozen=True, slots=True)
class Result:
    """One group's outcome; exactly one of the three forms must be filled in."""

    prompt_id: str
    correct: int | None = None
    total: int | None = None
    rewards: Sequence[float] | None = None
    pass_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k in _FIELDS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True)
class Rewards:
    """The results given as rewards: their positions in the request (``rows``) and their
    rewards back to back (row k's are ``values[starts[k]:starts[k + 1]]``)."""

    rows: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    starts: npt.NDArray[np.int64]


@dataclass(frozen=True)
class ParsedResults:
    """A validated request's results as parallel arrays (one entry per result, request order).

    Parsing needs no run: of a result's rules only the threshold is the run's, and it only turns
    rewards into a pass rate. So the coordinator parses a request once, before the store reads
    its run, and the engine calls ``pass_rates(threshold)``. ``pass_rate`` holds NaN at the rows
    of ``rewards`` until then; rewards are kept (and compared) as float64."""

    prompt_ids: list[str]
    pass_rate: npt.NDArray[np.float64]
    total: npt.NDArray[np.int64]
    zero_gradient: npt.NDArray[np.bool_]
    rewards: Rewards | None = None

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def pass_rates(self, threshold: float) -> npt.NDArray[np.float64]:
        """Each result's pass rate under a run's ``threshold``: a rewards row's is the share of
        its rewards above it (hits / G, the same float division as per-row Python). O(m + total
        rewards)."""
        if self.rewards is None:
            return self.pass_rate
        out = self.pass_rate.copy()
        rewards = self.rewards
        hits = np.add.reduceat((rewards.values > threshold).astype(np.int64), rewards.starts[:-1])
        out[rewards.rows] = hits / np.diff(rewards.starts)
        return out

    @cached_property
    def canonical(self) -> npt.NDArray[np.int64]:
        """``canonical_ints`` of the prompt ids, computed once."""
        return canonical_ints(self.prompt_ids)


def unknown_field(pos: int, name: str) -> InvalidArgumentError:
    """The error for a result with a field outside the three forms (the REST door says the same)."""
    return InvalidArgumentError(
        f"results[{pos}] has unknown field {name!r}; fields are prompt_id and one of "
        "correct+total, rewards, pass_rate+total",
        field=f"results[{pos}].{name}",
        value=name,
    )


def _bad(pos: int, field: str, value: Any, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"results[{pos}].{field} is {describe(value)}; {why}",
        field=f"results[{pos}].{field}",
        value=describe(value),
    )


def _count(pos: int, field: str, value: Any, low: int) -> int:
    if not is_int(value) or not low <= value <= MAX_ROLLOUTS:
        raise _bad(pos, field, value, f"it must be an integer in [{low}, {MAX_ROLLOUTS}]")
    return int(value)


def _fast(item: Any) -> _Row | None:
    """The common well-formed cases, with exact type checks only (about 3x cheaper than the full
    validation); None sends the item through ``_one``, which validates and explains."""
    if type(item) is not dict or len(item) != 3:
        return None
    prompt_id = item.get("prompt_id")
    g = item.get("total")
    if type(prompt_id) is not str or not 0 < len(prompt_id) <= 64 or type(g) is not int:
        return None  # (64 characters are at most 256 UTF-8 bytes)
    if not 0 < g <= MAX_ROLLOUTS:
        return None
    k = item.get("correct")
    if type(k) is int:
        if 0 <= k <= g:
            return prompt_id, k / g, g, k == 0 or k == g, None
        return None
    p = item.get("pass_rate")
    if type(p) is float and 0.0 <= p <= 1.0:  # NaN fails the comparison
        return prompt_id, p, g, p == 0.0 or p == 1.0, None
    return None


_Row = tuple[str, float, int, bool, "list[float] | None"]
"""A parsed result: prompt id, pass rate (NaN when given as rewards), G, zero-gradient, the
rewards (or None)."""


def _one(pos: int, item: Any) -> _Row:
    if isinstance(item, Result):
        item = item.to_dict()
    if not isinstance(item, Mapping):
        raise InvalidArgumentError(
            f"results[{pos}] is {describe(item)}; a result is an object with a prompt_id",
            field=f"results[{pos}]",
            value=describe(item),
        )
    unknown = item.keys() - _FIELDS
    if unknown:
        raise unknown_field(pos, sorted(map(str, unknown))[0])
    prompt_id = check_prompt_id(item.get("prompt_id"), f"results[{pos}].prompt_id")
    correct, total = item.get("correct"), item.get("total")
    rewards, pass_rate = item.get("rewards"), item.get("pass_rate")
    forms = (correct is not None) + (rewards is not None) + (pass_rate is not None)
    if forms != 1:
        raise InvalidArgumentError(
            f"results[{pos}] (prompt {prompt_id!r}) must carry exactly one of correct+total, "
            f"rewards, pass_rate+total; it has {forms}",
            field=f"results[{pos}]",
            value=prompt_id,
        )
    if rewards is not None:
        if total is not None:
            raise _bad(pos, "total", total, "rewards already give the group size; omit total")
        if isinstance(rewards, str | bytes) or not isinstance(rewards, Sequence | np.ndarray):
            raise _bad(pos, "rewards", rewards, "it must be a list of numbers")
        if not 1 <= len(rewards) <= MAX_ROLLOUTS:
            raise _bad(pos, "rewards", rewards, f"it must hold 1 to {MAX_ROLLOUTS} rewards")
        low, high = math.inf, -math.inf
        for r in rewards:
            if not is_real(r):
                raise _bad(pos, "rewards", rewards, f"reward {describe(r)} is not a finite number")
            low, high = min(low, r), max(high, r)
        return prompt_id, math.nan, len(rewards), low == high, [float(r) for r in rewards]
    g = _count(pos, "total", total, 1)
    if correct is not None:
        k = _count(pos, "correct", correct, 0)
        if k > g:
            raise _bad(pos, "correct", correct, f"it exceeds total {g}")
        return prompt_id, k / g, g, k in (0, g), None
    if not is_real(pass_rate) or not 0.0 <= pass_rate <= 1.0:
        raise _bad(pos, "pass_rate", pass_rate, "it must be a number in [0, 1]")
    p = float(pass_rate)
    return prompt_id, p, g, p in (0.0, 1.0), None


def parse_results(results: Iterable[Any]) -> ParsedResults:
    """Validate every result of a request and return them as arrays. O(total rewards + m).

    Also rejects a prompt id that appears twice in one request. Needs no run (see
    ``ParsedResults``): the one parse of a request, in ``Coordinator``.
    """
    if isinstance(results, str | bytes | Mapping) or not isinstance(results, Iterable):
        raise InvalidArgumentError(
            f"results is {describe(results)}; it must be a list of results",
            field="results",
            value=describe(results),
        )
    if not isinstance(results, list):
        results = list(results)
    columns = _columns(results)
    rewards = None
    if columns is None:
        rows = [_fast(item) or _one(pos, item) for pos, item in enumerate(results)]
        if not rows:
            empty = np.zeros(0, dtype=np.int64)
            return ParsedResults([], np.zeros(0), empty, np.zeros(0, dtype=bool))
        names, rates, totals, zeros, given = zip(*rows, strict=True)
        columns = (list(names), np.array(rates), np.array(totals), np.array(zeros, dtype=bool))
        rewards = _rewards(given)
    return _finish(*columns, rewards)


def parse_columns(
    prompt_ids: Sequence[str], correct: Sequence[int], total: Sequence[int]
) -> ParsedResults:
    """Results given as columns (result k is ``{prompt_ids[k], correct[k], total[k]}``, the gRPC
    door's form) parsed without a dict per result: the same checks, answers and errors as
    ``parse_results`` of those dicts (which explains whatever the fast checks refuse). The
    columns must have equal lengths (the door checks). O(m)."""
    ids = list(prompt_ids)
    columns = _valid_columns(ids, list(correct), list(total))
    if columns is None:
        return parse_results(
            [
                {"prompt_id": p, "correct": k, "total": g}
                for p, k, g in zip(ids, correct, total, strict=True)
            ]
        )
    return _finish(*columns, None)


def _finish(
    ids: list[str],
    pass_rate: Any,
    total: Any,
    zero_gradient: Any,
    rewards: Rewards | None,
) -> ParsedResults:
    """The parsed columns, once no prompt id appears twice (an error naming both positions)."""
    if len(set(ids)) != len(ids):
        seen: dict[str, int] = {}
        for pos, prompt_id in enumerate(ids):
            if prompt_id in seen:
                raise InvalidArgumentError(
                    f"prompt {prompt_id!r} appears twice in one request "
                    f"(results[{seen[prompt_id]}] and results[{pos}])",
                    field=f"results[{pos}].prompt_id",
                    value=prompt_id,
                )
            seen[prompt_id] = pos
    return ParsedResults(
        prompt_ids=ids,
        pass_rate=np.asarray(pass_rate, dtype=np.float64),
        total=np.asarray(total, dtype=np.int64),
        zero_gradient=np.asarray(zero_gradient, dtype=np.bool_),
        rewards=rewards,
    )


def _rewards(given: tuple[list[float] | None, ...]) -> Rewards | None:
    """The rewards rows of a request as one ``Rewards`` (None when it has none)."""
    rows = [k for k, values in enumerate(given) if values is not None]
    if not rows:
        return None
    lists = [given[k] or [] for k in rows]
    starts = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(values) for values in lists], out=starts[1:])
    flat = np.fromiter((r for values in lists for r in values), np.float64, int(starts[-1]))
    return Rewards(np.asarray(rows, dtype=np.int64), flat, starts)


def _columns(
    results: list[Any],
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.bool_]] | None:
    """The whole request at once when every result is a plain ``{"prompt_id", "correct",
    "total"}`` dict with well-formed values (the trainers' usual form): a few C-level passes
    instead of a Python call per result. None sends the request through the per-result path,
    which validates and explains."""
    if not results or any(type(r) is not dict or len(r) != 3 for r in results):
        return None
    try:
        ids = [r["prompt_id"] for r in results]
        correct = [r["correct"] for r in results]
        total = [r["total"] for r in results]
    except KeyError:
        return None
    return _valid_columns(ids, correct, total)


def _valid_columns(
    ids: list[Any], correct: list[Any], total: list[Any]
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.bool_]] | None:
    """Columns of the correct/total form as arrays, when every value is well-formed (exact type
    checks, in a few C-level passes); None otherwise."""
    if not ids:
        return None
    if (
        set(map(type, ids)) != {str}
        or set(map(type, correct)) != {int}
        or set(map(type, total)) != {int}
        or max(map(len, ids)) > 64  # 64 characters are at most 256 UTF-8 bytes
        or min(map(len, ids)) < 1
    ):
        return None
    if (
        min(correct) < 0
        or max(correct) > MAX_ROLLOUTS
        or min(total) < 1
        or max(total) > MAX_ROLLOUTS
    ):
        return None
    k, g = np.array(correct, dtype=np.int64), np.array(total, dtype=np.int64)
    if (k > g).any():
        return None
    return ids, k / g, g, (k == 0) | (k == g)
