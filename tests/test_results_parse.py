"""The one parse of a request's results: run-free (the threshold applies later, in the engine),
and the gRPC door's columns parsed without dicts to the same answers and the same errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cdas.core.errors import InvalidArgumentError
from cdas.core.results import ParsedResults, parse_columns, parse_results


def _as_tuple(p: ParsedResults, threshold: float = 0.5) -> tuple[Any, ...]:
    rates = p.pass_rates(threshold)
    return p.prompt_ids, rates.tolist(), p.total.tolist(), p.zero_gradient.tolist()


def test_rewards_become_pass_rates_under_each_threshold_as_per_row_python_would() -> None:
    rng = np.random.default_rng(1)
    results: list[dict[str, Any]] = []
    for k in range(60):
        g = int(rng.integers(1, 9))
        if k % 3 == 0:
            results.append(
                {"prompt_id": str(k), "correct": int(rng.integers(0, g + 1)), "total": g}
            )
        else:
            rewards = rng.choice([0.0, 0.25, 0.5, 1.0, 2], size=g).tolist()
            results.append({"prompt_id": str(k), "rewards": rewards})
    parsed = parse_results(results)
    for threshold in (-1.0, 0.0, 0.25, 0.5, 0.9, 5.0):
        rates = parsed.pass_rates(threshold)
        for k, result in enumerate(results):
            if "rewards" in result:
                rewards = result["rewards"]
                expected = sum(r > threshold for r in rewards) / len(rewards)
                assert parsed.zero_gradient[k] == (min(rewards) == max(rewards))
            else:
                expected = result["correct"] / result["total"]
            assert rates[k] == expected, (threshold, k)


def test_columns_parse_to_what_their_dicts_parse_to() -> None:
    ids, correct, total = ["0", "7", "x"], [0, 3, 8], [8, 8, 8]
    dicts = [
        {"prompt_id": p, "correct": k, "total": g}
        for p, k, g in zip(ids, correct, total, strict=True)
    ]
    assert _as_tuple(parse_columns(ids, correct, total)) == _as_tuple(parse_results(dicts))
    assert _as_tuple(parse_columns([], [], [])) == _as_tuple(parse_results([]))


@pytest.mark.parametrize(
    ("ids", "correct", "total", "field"),
    [
        (["0", "1"], [9, 0], [8, 8], "results[0].correct"),
        (["0", ""], [1, 0], [8, 8], "results[1].prompt_id"),
        (["0", "1"], [1, -1], [8, 8], "results[1].correct"),
        (["0", "1"], [1, 0], [8, 0], "results[1].total"),
        (["5", "5"], [1, 0], [8, 8], "results[1].prompt_id"),
        (["0", "y" * 300], [1, 0], [8, 8], "results[1].prompt_id"),
    ],
)
def test_bad_columns_are_refused_with_their_dicts_error(
    ids: list[str], correct: list[int], total: list[int], field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as by_columns:
        parse_columns(ids, correct, total)
    dicts = [
        {"prompt_id": p, "correct": k, "total": g}
        for p, k, g in zip(ids, correct, total, strict=True)
    ]
    with pytest.raises(InvalidArgumentError) as by_dicts:
        parse_results(dicts)
    assert by_columns.value.details["field"] == field
    assert by_columns.value.to_dict() == by_dicts.value.to_dict()
