"""Bad input gets a typed error whose message names the bad value, and changes nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import cdas
from tests.conftest import StoreFactory, assert_same_state, logical_state


@pytest.fixture
def seeded(coord: cdas.Coordinator) -> cdas.Coordinator:
    coord.put_run("r", prompts=20, seed=1)
    batch = coord.next_batch("r", 1, 4)
    coord.report_results(
        "r", 1, [{"prompt_id": p, "correct": 3, "total": 8} for p in batch.prompt_ids]
    )
    return coord


def _ok(pid: str = "3") -> dict[str, Any]:
    return {"prompt_id": pid, "correct": 1, "total": 8}


CASES: list[tuple[str, Callable[[cdas.Coordinator], Any], type[cdas.CdasError], str]] = [
    ("unknown run", lambda c: c.next_batch("nope", 2, 4), cdas.RunNotFoundError, "'nope'"),
    (
        "unknown run (results)",
        lambda c: c.report_results("nope", 2, [_ok()]),
        cdas.RunNotFoundError,
        "'nope'",
    ),
    ("unknown run (state)", lambda c: c.get_state("nope"), cdas.RunNotFoundError, "'nope'"),
    ("unknown prompt", lambda c: c.get_prompt("r", "x-17"), cdas.PromptNotFoundError, "'x-17'"),
    (
        "unknown prompt in results",
        lambda c: c.report_results("r", 2, [_ok(), _ok("x-17")]),
        cdas.InvalidArgumentError,
        "'x-17'",
    ),
    (
        "pass rate above 1",
        lambda c: c.report_results(
            "r", 2, [_ok(), {"prompt_id": "4", "pass_rate": 1.5, "total": 8}]
        ),
        cdas.InvalidArgumentError,
        "1.5",
    ),
    (
        "pass rate below 0",
        lambda c: c.report_results("r", 2, [{"prompt_id": "4", "pass_rate": -0.25, "total": 8}]),
        cdas.InvalidArgumentError,
        "-0.25",
    ),
    (
        "pass rate NaN",
        lambda c: c.report_results(
            "r", 2, [_ok(), {"prompt_id": "4", "pass_rate": math.nan, "total": 8}]
        ),
        cdas.InvalidArgumentError,
        "nan",
    ),
    (
        "reward NaN",
        lambda c: c.report_results("r", 2, [{"prompt_id": "4", "rewards": [1.0, math.nan]}]),
        cdas.InvalidArgumentError,
        "nan",
    ),
    (
        "correct > total",
        lambda c: c.report_results("r", 2, [_ok(), {"prompt_id": "4", "correct": 9, "total": 8}]),
        cdas.InvalidArgumentError,
        "9",
    ),
    (
        "negative correct",
        lambda c: c.report_results("r", 2, [{"prompt_id": "4", "correct": -1, "total": 8}]),
        cdas.InvalidArgumentError,
        "-1",
    ),
    (
        "zero total",
        lambda c: c.report_results("r", 2, [{"prompt_id": "4", "correct": 0, "total": 0}]),
        cdas.InvalidArgumentError,
        "0",
    ),
    (
        "two forms",
        lambda c: c.report_results(
            "r", 2, [{"prompt_id": "4", "correct": 1, "total": 8, "pass_rate": 0.1}]
        ),
        cdas.InvalidArgumentError,
        "'4'",
    ),
    (
        "unknown field",
        lambda c: c.report_results("r", 2, [{"prompt_id": "4", "corect": 1, "total": 8}]),
        cdas.InvalidArgumentError,
        "'corect'",
    ),
    (
        "duplicate prompt ids",
        lambda c: c.report_results("r", 2, [_ok("5"), _ok("6"), _ok("5")]),
        cdas.InvalidArgumentError,
        "'5'",
    ),
    ("batch size 0", lambda c: c.next_batch("r", 2, 0), cdas.InvalidArgumentError, "0"),
    ("batch size > run", lambda c: c.next_batch("r", 2, 21), cdas.InvalidArgumentError, "21"),
    ("negative step (batch)", lambda c: c.next_batch("r", -1, 4), cdas.InvalidArgumentError, "-1"),
    (
        "negative step (results)",
        lambda c: c.report_results("r", -3, [_ok()]),
        cdas.InvalidArgumentError,
        "-3",
    ),
    ("non-integer step", lambda c: c.next_batch("r", 1.5, 4), cdas.InvalidArgumentError, "1.5"),  # type: ignore[arg-type]
    (
        "negative round",
        lambda c: c.next_batch("r", 2, 4, round=-1),
        cdas.InvalidArgumentError,
        "-1",
    ),
    (
        "round before previous",
        lambda c: c.next_batch("r", 2, 4, round=1),
        cdas.ConflictError,
        "round 1",
    ),
    ("same batch other size", lambda c: c.next_batch("r", 1, 5), cdas.ConflictError, "size 4"),
    (
        "unknown strategy",
        lambda c: c.put_run("s", strategy="cdass", prompts=5),
        cdas.InvalidArgumentError,
        "'cdass'",
    ),
    (
        "unknown parameter",
        lambda c: c.put_run("s", params={"warmpu": True}, prompts=5),
        cdas.InvalidArgumentError,
        "'warmpu'",
    ),
    (
        "bad parameter value",
        lambda c: c.put_run("s", params={"warmup": "yes"}, prompts=5),
        cdas.InvalidArgumentError,
        "'yes'",
    ),
    ("bad seed", lambda c: c.put_run("s", seed=-2, prompts=5), cdas.InvalidArgumentError, "-2"),
    ("bad run id", lambda c: c.put_run("a b", prompts=5), cdas.InvalidArgumentError, "'a b'"),
    (
        "same run other config",
        lambda c: c.put_run("r", strategy="random", prompts=20, seed=1),
        cdas.ConflictError,
        "'r'",
    ),
    (
        "same run other prompts",
        lambda c: c.put_run("r", prompts=21, seed=1),
        cdas.ConflictError,
        "'r'",
    ),
    (
        "duplicate ids in add",
        lambda c: c.add_prompts("r", ["a", "b", "a"]),
        cdas.InvalidArgumentError,
        "'a'",
    ),
    (
        "id already registered",
        lambda c: c.add_prompts("r", ["a", "7"]),
        cdas.InvalidArgumentError,
        "'7'",
    ),
    ("empty id", lambda c: c.add_prompts("r", ["a", ""]), cdas.InvalidArgumentError, "''"),
    (
        "id too long",
        lambda c: c.add_prompts("r", ["x" * 257]),
        cdas.InvalidArgumentError,
        "257 bytes",
    ),
    (
        "label for unknown id",
        lambda c: c.add_prompts("r", ["a"], labels={"b": 1}),
        cdas.InvalidArgumentError,
        "'b'",
    ),
    (
        "non-finite label",
        lambda c: c.add_prompts("r", ["a"], labels={"a": math.inf}),
        cdas.InvalidArgumentError,
        "inf",
    ),
    (
        "curriculum without labels",
        lambda c: c.put_run("s", strategy="curriculum", prompts=5),
        cdas.InvalidArgumentError,
        "'0'",
    ),
    (
        "bad schedule",
        lambda c: c.put_run(
            "s",
            strategy="curriculum",
            params={"schedule": [{"until_step": 5}, {"until_step": 3}]},
            prompts=1,
            labels={"0": 1},
        ),
        cdas.InvalidArgumentError,
        "3",
    ),
    (
        "dynamic max rounds",
        lambda c: c.put_run("d", strategy="dynamic", params={"max_rounds": 0}, prompts=3),
        cdas.InvalidArgumentError,
        "0",
    ),
    (
        "bad snapshot",
        lambda c: c.restore("r", b"not a snapshot"),
        cdas.InvalidArgumentError,
        "snapshot",
    ),
]


@pytest.mark.parametrize(("case", "call", "error", "names"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_and_changes_nothing(
    seeded: cdas.Coordinator,
    case: str,
    call: Callable[[cdas.Coordinator], Any],
    error: type[cdas.CdasError],
    names: str,
) -> None:
    before = logical_state(seeded, "r")
    runs = seeded.list_runs()
    with pytest.raises(error) as caught:
        call(seeded)
    assert names in caught.value.message, caught.value.message
    assert caught.value.to_dict()["error"]["code"] == error.code
    assert seeded.list_runs() == runs
    assert_same_state(logical_state(seeded, "r"), before)


def test_dynamic_rounds_beyond_max_rounds_are_rejected(coord: cdas.Coordinator) -> None:
    coord.put_run("d", strategy="dynamic", params={"max_rounds": 2}, prompts=30)
    coord.next_batch("d", 0, 5, round=0)
    coord.next_batch("d", 0, 5, round=1)
    before = logical_state(coord, "d")
    with pytest.raises(cdas.InvalidArgumentError, match="round 2 of step 0 exceeds max_rounds 2"):
        coord.next_batch("d", 0, 5, round=2)
    assert_same_state(logical_state(coord, "d"), before)


def test_a_step_never_repeats_a_prompt_so_rounds_cannot_exceed_the_run(
    coord: cdas.Coordinator,
) -> None:
    coord.put_run("d", strategy="dynamic", prompts=10)
    coord.next_batch("d", 0, 8)
    with pytest.raises(
        cdas.InvalidArgumentError, match="exceeds the 2 prompts not yet issued in step 0"
    ):
        coord.next_batch("d", 0, 3, round=1)


def test_steps_older_than_the_retained_window_are_a_conflict(make_store: StoreFactory) -> None:
    coord = cdas.Coordinator(make_store(retain_steps=3))
    coord.put_run("r", prompts=10)
    for step in range(5):
        coord.next_batch("r", step, 2)
    assert coord.next_batch("r", 2, 2).step == 2  # still retained
    with pytest.raises(cdas.ConflictError, match="step 1 is older than the retained window"):
        coord.next_batch("r", 1, 2)
    with pytest.raises(cdas.ConflictError, match="step 0 is older"):
        coord.report_results("r", 0, [{"prompt_id": "1", "correct": 1, "total": 2}])


def test_curriculum_rounds_cannot_exceed_the_admitted_prompts_not_yet_issued(
    coord: cdas.Coordinator,
) -> None:
    labels = {str(i): i % 5 + 1 for i in range(30)}
    coord.put_run(
        "c",
        strategy="curriculum",
        params={"schedule": [{"min_label": 2}]},
        prompts=30,
        labels=labels,
    )
    coord.next_batch("c", 0, 15)  # 24 admitted (labels 2-5)
    before = logical_state(coord, "c")
    with pytest.raises(
        cdas.InvalidArgumentError, match="exceeds the 9 prompts the curriculum admits"
    ):
        coord.next_batch("c", 0, 10, round=1)
    assert_same_state(logical_state(coord, "c"), before)
    assert len(coord.next_batch("c", 0, 9, round=1).prompt_ids) == 9


@pytest.mark.parametrize(
    ("bad", "names"),
    [
        ({"prompt_id": "3", "correct": -(2**70), "total": 8}, str(-(2**70))),
        ({"prompt_id": "3", "correct": 2**70, "total": 8}, str(2**70)),
        ({"prompt_id": "3", "correct": True, "total": 8}, "True"),
        ({"prompt_id": "3", "correct": 1.0, "total": 8}, "1.0"),
        ({"prompt_id": "", "correct": 1, "total": 8}, "''"),
    ],
)
def test_a_bad_value_among_many_good_ones_is_named(
    seeded: cdas.Coordinator, bad: dict[str, Any], names: str
) -> None:
    """The whole-request fast path falls back to the per-result checks, which name the value."""
    good = [{"prompt_id": str(i), "correct": 1, "total": 8} for i in range(4, 20)]
    before = logical_state(seeded, "r")
    with pytest.raises(cdas.InvalidArgumentError) as caught:
        seeded.report_results("r", 2, [*good, bad])
    assert names in caught.value.message
    assert_same_state(logical_state(seeded, "r"), before)


@pytest.mark.parametrize("prompts", [None, {}, {"ids": ["a"], "count": 2}, {"labels": {"a": 1}}])
def test_add_prompts_needs_exactly_one_of_ids_and_count(prompts: Any) -> None:
    """The rule both doors pass on (REST hands over its body's ids/count, gRPC its oneof), held
    by the library itself: the same message, and nothing changes."""
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", prompts=4)
    before = coord.snapshot("r")
    with pytest.raises(cdas.InvalidArgumentError, match=r'give "ids": \[\.\.\.\] \(or "count"'):
        coord.add_prompts("r", prompts)
    assert coord.snapshot("r") == before
    assert coord.add_prompts("r", {"count": 2}) == 6  # the forms the doors hand over still work
    assert coord.add_prompts("r", {"ids": ["x"]}) == 7


@pytest.mark.parametrize("key", ["²", "٣", "1²", "+1", " 1"])
def test_a_label_key_that_is_not_an_ascii_numeral_is_named_for_counted_prompts(key: str) -> None:
    """Prompts given as a count are ids "n".."n+count-1"; a label keyed by anything else (a
    superscript or an Arabic-Indic digit, which ``str.isdigit`` accepts and ``int`` may not) is
    a 422 naming it, never a 500, and nothing changes. The stateful schemathesis run found "²"."""
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", prompts=4)
    before = coord.snapshot("r")
    with pytest.raises(cdas.InvalidArgumentError, match="not among the prompts of this call"):
        coord.add_prompts("r", 3, labels={key: 1.0})
    with pytest.raises(cdas.InvalidArgumentError, match="not among the prompts of this call"):
        coord.put_run("s", prompts=3, labels={key: 1.0})
    assert coord.snapshot("r") == before
    assert [r.run_id for r in coord.list_runs()] == ["r"]
