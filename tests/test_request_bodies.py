"""Issue 19's F2 and the duplicate-key finding, on both stores: a JSON endpoint answers 415 to any
other Content-Type (a form or text/plain post is what a web page can send cross-site without a CORS
preflight), the snapshot's PUT takes only its binary type, and a key given twice in one JSON object
is refused naming the key. Every refusal changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

import cdas
from tests.test_service_errors import assert_rest_error, rest_client, seed_run, state_of

JSON_CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("PUT", "/v1/runs/fresh", {"prompts": {"count": 3}}),
    ("PUT", "/v1/runs/r", {"prompts": {"count": 20}, "seed": 1}),
    ("POST", "/v1/runs/r/prompts", {"count": 2}),
    ("POST", "/v1/runs/r/batches", {"step": 2, "size": 4}),
    ("POST", "/v1/runs/r/results", {"step": 1, "results": []}),
    ("POST", "/v1/runs/r/advance", {"step": 1, "results": [], "size": 4}),
]

NOT_JSON = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "application/jsonx",
]


@pytest.mark.parametrize("content_type", NOT_JSON)
@pytest.mark.parametrize(("method", "path", "body"), JSON_CALLS)
def test_json_endpoints_refuse_other_content_types(
    coord: cdas.Coordinator, method: str, path: str, body: dict[str, Any], content_type: str | None
) -> None:
    seed_run(coord, "r")
    before = state_of(coord, "r")
    headers = {} if content_type is None else {"content-type": content_type}
    answer = rest_client(coord).request(
        method, path, content=json.dumps(body).encode(), headers=headers
    )
    error = assert_rest_error(answer, "unsupported_media_type", "application/json")
    assert error["details"]["content_type"] == (content_type or "").split(";")[0]
    assert state_of(coord, "r") == before


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON; charset=utf-8", "application/cdas+json"]
)
def test_every_json_media_type_is_accepted(coord: cdas.Coordinator, content_type: str) -> None:
    client = rest_client(coord)
    body = json.dumps({"prompts": {"count": 3}}).encode()
    answer = client.put("/v1/runs/r", content=body, headers={"content-type": content_type})
    assert answer.status_code == 201, answer.text
    answer = client.post(
        "/v1/runs/r/batches",
        content=b'{"step": 1, "size": 2}',
        headers={"content-type": content_type},
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain"])
def test_the_snapshot_put_takes_only_its_binary_type(
    coord: cdas.Coordinator, content_type: str | None
) -> None:
    seed_run(coord, "r")
    snapshot = coord.snapshot("r")
    before = state_of(coord, "r")
    headers = {} if content_type is None else {"content-type": content_type}
    client = rest_client(coord)
    answer = client.put("/v1/runs/copy/snapshot", content=snapshot, headers=headers)
    assert_rest_error(answer, "unsupported_media_type", "application/octet-stream")
    assert state_of(coord, "r") == before
    answer = client.put(
        "/v1/runs/copy/snapshot",
        content=snapshot,
        headers={"content-type": "application/octet-stream"},
    )
    assert answer.status_code == 200, answer.text


REPEATED: list[tuple[str, str, bytes, str]] = [
    ("PUT", "/v1/runs/r", b'{"prompts": {"count": 20}, "seed": 1, "seed": 2}', "seed"),
    ("PUT", "/v1/runs/fresh", b'{"prompts": {"count": 3, "count": 4}}', "count"),
    ("POST", "/v1/runs/r/prompts", b'{"count": 2, "count": 3}', "count"),
    ("POST", "/v1/runs/r/batches", b'{"step": 2, "size": 4, "step": 3}', "step"),
    (
        "POST",
        "/v1/runs/r/results",
        b'{"step": 1, "results": [{"prompt_id": "0", "correct": 1, "correct": 8, "total": 8}]}',
        "correct",
    ),
    ("POST", "/v1/runs/r/batches", b'{"step": 2, "size": 4, "\\u0073tep": 3}', "step"),
    ("POST", "/v1/runs/r/advance", b'{"step": 1, "results": [], "size": 4, "size": 5}', "size"),
]


@pytest.mark.parametrize(("method", "path", "raw", "key"), REPEATED)
def test_a_repeated_key_is_refused_naming_it(
    coord: cdas.Coordinator, method: str, path: str, raw: bytes, key: str
) -> None:
    seed_run(coord, "r")
    before = state_of(coord, "r")
    answer = rest_client(coord).request(
        method, path, content=raw, headers={"content-type": "application/json"}
    )
    error = assert_rest_error(answer, "invalid_argument", f"repeats the key '{key}'")
    assert error["details"]["field"] == key
    assert state_of(coord, "r") == before


def test_a_body_that_is_not_utf8_is_refused(coord: cdas.Coordinator) -> None:
    seed_run(coord, "r")
    before = state_of(coord, "r")
    raw = '{"step": 2, "size": 4}'.encode("utf-16")
    answer = rest_client(coord).post(
        "/v1/runs/r/batches", content=raw, headers={"content-type": "application/json"}
    )
    assert_rest_error(answer, "invalid_argument", "UTF-8")
    assert state_of(coord, "r") == before
