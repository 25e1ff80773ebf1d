"""Issue 19 (F3's checks): hostile request bodies to every body-taking endpoint of the REST door,
on both stores. Random JSON-ish values (wrong types, unicode, NaN, huge numbers) in and around the
endpoint's fields, bodies that are not JSON at all, deep nesting, integer literals of thousands of
digits, repeated keys, other Content-Types: each answer is a 2xx (the body was valid) or a 4xx
with the contract's error body, and a refused request leaves the store as it was (the seeded
run's snapshot and the list of runs). About 150 requests per store, a few seconds.

The 500s this found (a JSON integer literal of 400 digits in a parameter, one of 5000 digits, a
body nested 1000 deep) have their own cases below."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

import cdas
from cdas.core.errors import STATUS
from tests.test_service_errors import rest_client, seed_run, state_of

JSON = "application/json"
OCTETS = "application/octet-stream"

ENDPOINTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("PUT", "/v1/runs/r", ("strategy", "params", "seed", "prompts", "labels")),
    ("PUT", "/v1/runs/fresh", ("strategy", "params", "seed", "prompts", "labels")),
    ("POST", "/v1/runs/r/prompts", ("ids", "count", "labels")),
    ("POST", "/v1/runs/r/batches", ("step", "size", "round")),
    ("POST", "/v1/runs/r/results", ("step", "results")),
    ("POST", "/v1/runs/r/advance", ("step", "results", "size")),
]
"""The JSON endpoints, each with the fields of its body."""

VALID: dict[str, dict[str, Any]] = {
    "/v1/runs/r": {"strategy": "cdas", "params": {}, "seed": 1, "prompts": {"count": 20}},
    "/v1/runs/fresh": {
        "strategy": "curriculum",
        "params": {"schedule": [{"until_step": 2}, {"min_label": 1}], "threshold": 0.5},
        "prompts": {"ids": ["a", "b"]},
        "labels": {"a": 1, "b": 2},
    },
    "/v1/runs/r/prompts": {"ids": ["a", "b"], "labels": {"a": 1.5}},
    "/v1/runs/r/batches": {"step": 2, "size": 4, "round": 0},
    "/v1/runs/r/results": {
        "step": 1,
        "results": [
            {"prompt_id": "3", "correct": 1, "total": 8},
            {"prompt_id": "4", "rewards": [1.0, 0.0]},
            {"prompt_id": "5", "pass_rate": 0.5, "total": 4},
        ],
    },
    "/v1/runs/r/advance": {
        "step": 1,
        "results": [
            {"prompt_id": "3", "correct": 1, "total": 8},
            {"prompt_id": "4", "rewards": [1.0, 0.0]},
        ],
        "size": 4,
    },
}
"""A valid body of each, for one field at a time to be made hostile."""

SNAPSHOTS = ["/v1/runs/r/snapshot", "/v1/runs/fresh/snapshot"]

NAMES = sorted(
    {name for _, _, fields in ENDPOINTS for name in fields}
    | {"count", "ids", "prompt_id", "correct", "total", "rewards", "pass_rate", "schedule"}
    | {"warmup", "threshold", "max_rounds", "candidates", "until_step", "min_label"}
)

huge = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([2**31, 2**31 - 1, 2**63, -(2**63) - 1, 10**308 * 2, 1e308, 5e-324, -0.0]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=30),
    huge,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "3", "r", "cdas", "curriculum", "\ud800", "\x00", "é" * 200, "😀" * 70]),
)
keys = st.one_of(st.sampled_from(NAMES), st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=12,
)


def near_valid(fields: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with the endpoint's fields (some missing, some extra) holding any values."""
    return st.dictionaries(st.sampled_from(fields) | keys, values, max_size=len(fields) + 1)


def results() -> st.SearchStrategy[dict[str, Any]]:
    """A results body whose results are near-valid results."""
    result = st.dictionaries(
        st.sampled_from(["prompt_id", "correct", "total", "rewards", "pass_rate"]) | keys,
        values | st.sampled_from(["3", "4", 1, 8, 0.5, [1.0, 0.0]]),
        max_size=4,
    )
    return st.fixed_dictionaries(
        {
            "step": st.integers(min_value=-2, max_value=4) | huge,
            "results": st.lists(result, max_size=3),
        }
    )


@st.composite
def one_field_hostile(draw: st.DrawFn, path: str) -> dict[str, Any]:
    """The endpoint's valid body with one field, at any depth, replaced, dropped, or joined by an
    unknown one."""
    body = copy.deepcopy(VALID[path])
    spots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            spots.append((node, key))
            if isinstance(value, dict | list):
                walk(value)

    walk(body)
    node, key = draw(st.sampled_from(spots))
    how = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
    if how == "replace":
        node[key] = draw(values)
    elif how == "drop":
        del node[key]
    elif isinstance(node, dict):
        node[draw(keys)] = draw(values)
    else:
        node.append(draw(values))
    return body


def dumped(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def deep(depth: int, opener: str) -> bytes:
    inner = "[" * depth + "]" * depth if opener == "[" else '{"a":' * depth + "1" + "}" * depth
    return f'{{"step": {inner}, "size": 1}}'.encode()


raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.builds(deep, st.integers(min_value=1, max_value=3000), st.sampled_from("[{")),
    st.integers(min_value=300, max_value=6000).map(
        lambda n: b'{"step": 1' + b"0" * n + b', "size": 1}'
    ),
    st.sampled_from(
        [
            b'{"step": 1, "size": 2, "step": 3}',
            b'{"prompts": {"count": 3, "count": 4}}',
            b'{"step": 1e99999, "size": 1}',
            b'{"step": -0, "size": 1.0}',
            b'{"params": {"threshold": NaN}}',
            b'{"params": {"threshold": 1' + b"0" * 400 + b"}}",
            b'{"strategy": "mopps", "params": {"decay": -1' + b"0" * 400 + b"}}",
            b'{"count": 1' + b"0" * 30 + b"}",
            b'{"ids": ["\\ud800", "\\udfff"]}',
            b'{"ids": ["a\\u0000b"]}',
            b"\xef\xbb\xbf{}",
            b"",
            b"null",
            b"[]",
        ]
    ),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, str]:
    """(method, path, body, Content-Type) of a hostile request."""
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        path = draw(st.sampled_from(SNAPSHOTS))
        body = draw(st.binary(max_size=200) | st.binary(max_size=200).map(b"PK\x03\x04".__add__))
        media = draw(st.sampled_from([OCTETS, OCTETS, JSON]))
        return "PUT", path, body, media
    method, path, fields = draw(st.sampled_from(ENDPOINTS))
    kind = draw(st.integers(min_value=0, max_value=5))
    if kind == 0:
        body = draw(raw_bodies)
    elif kind == 1:
        body = dumped(draw(values))
    elif kind == 2:
        body = dumped(draw(results() if path.endswith("/results") else near_valid(fields)))
    else:
        body = dumped(draw(one_field_hostile(path)))
    media = draw(st.sampled_from([JSON] * 6 + ["application/cdas+json", "text/plain"]))
    return method, path, body, media


def assert_answer(status: int, answer: dict[str, Any] | list[Any], asked: str) -> None:
    assert status < 500, (status, answer, asked)
    if status >= 300:
        assert 400 <= status < 500, (status, answer, asked)
        assert isinstance(answer, dict), asked
        assert set(answer) == {"error"}, (answer, asked)
        error = answer["error"]
        assert set(error) == {"code", "message", "details"}, (answer, asked)
        assert STATUS[error["code"]][0] == status, (status, answer, asked)
        assert isinstance(error["message"], str), asked
        assert error["message"], asked
        assert isinstance(error["details"], dict), asked


def test_hostile_bodies_are_refused_with_the_error_body_and_change_nothing(
    coord: cdas.Coordinator,
) -> None:
    seed_run(coord, "r")
    client = rest_client(coord)
    baseline = [state_of(coord, "r")]

    @hypothesis.given(request=requests())
    @hypothesis.settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[hypothesis.HealthCheck.too_slow],
    )
    def check(request: tuple[str, str, bytes, str]) -> None:
        method, path, body, media = request
        answer = client.request(method, path, content=body, headers={"content-type": media})
        asked = f"{method} {path} {media} {body[:200]!r}"
        assert_answer(answer.status_code, answer.json(), asked)
        if answer.status_code < 300:  # a valid body did its work: start again from the seed
            for run in coord.list_runs():
                coord.delete_run(run.run_id)
            seed_run(coord, "r")
            baseline[0] = state_of(coord, "r")
        else:
            assert state_of(coord, "r") == baseline[0], asked

    check()


@pytest.mark.parametrize(
    ("path", "raw", "says"),
    [
        ("/v1/runs/x", b'{"params": {"threshold": 1' + b"0" * 400 + b"}}", "params.threshold"),
        (
            "/v1/runs/x",
            b'{"strategy": "mopps", "params": {"decay": 1' + b"0" * 400 + b"}}",
            "decay",
        ),
        (
            "/v1/runs/x",
            b'{"strategy": "curriculum", "params": {"schedule": [{"min_label": 1'
            + b"0" * 400
            + b'}]}, "prompts": {"count": 1}, "labels": {"0": 1}}',
            "min_label",
        ),
        ("/v1/runs/r/batches", b'{"step": 1' + b"0" * 5000 + b', "size": 1}', "4300 digits"),
        ("/v1/runs/r/batches", b'{"step": ' + b"[" * 5000 + b"]" * 5000 + b"}", "too deeply"),
        ("/v1/runs/r/batches", b'{"step": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001, "too deeply"),
    ],
    ids=[
        "huge-threshold",
        "huge-decay",
        "huge-label-bound",
        "5000-digits",
        "deep-list",
        "deep-object",
    ],
)
def test_what_the_fuzzing_found_is_a_422_naming_it(
    coord: cdas.Coordinator, path: str, raw: bytes, says: str
) -> None:
    """Each was a 500 (an integer too large for a float met ``math.isfinite``; ``json.loads``
    raised ``ValueError`` past 4300 digits and ``RecursionError`` past the recursion limit)."""
    seed_run(coord, "r")
    before = state_of(coord, "r")
    method = "PUT" if path == "/v1/runs/x" else "POST"
    answer = rest_client(coord).request(method, path, content=raw, headers={"content-type": JSON})
    assert answer.status_code == 422, answer.text
    assert_answer(422, answer.json(), path)
    assert says in answer.json()["error"]["message"]
    assert state_of(coord, "r") == before


@pytest.mark.parametrize("value", [10**400, -(10**400), math.inf, math.nan])
def test_the_library_refuses_numbers_a_float_cannot_hold(
    coord: cdas.Coordinator, value: float
) -> None:
    """Parameters, labels and results: a number too large for a float is refused like an
    infinity, naming the field (it was an ``OverflowError`` out of ``math.isfinite``)."""
    seed_run(coord, "r")
    before = state_of(coord, "r")
    calls: list[Callable[[], object]] = [
        lambda: coord.put_run("x", params={"threshold": value}),
        lambda: coord.put_run("x", prompts=1, labels={"0": value}),
        lambda: coord.report_results("r", 2, [{"prompt_id": "3", "pass_rate": value, "total": 8}]),
        lambda: coord.report_results("r", 2, [{"prompt_id": "3", "rewards": [1.0, value]}]),
    ]
    for call in calls:
        with pytest.raises(cdas.InvalidArgumentError):
            call()
    assert state_of(coord, "r") == before
