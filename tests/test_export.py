"""The difficulty export (issue 19): every prompt of a run with its difficulty, updates, last pass
rate, last step and label, in registration order, as pages. The library on both stores (pages
that add up to one big read, each row what ``get_prompt`` answers, a Redis page read as a slice),
REST (JSON pages, the whole run streamed as CSV), gRPC (a stream of pages), the SDK clients, and
``cdas export`` writing CSV and Parquet that read back equal; bad arguments name the value."""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pyarrow.parquet as pq
import pytest

import cdas
from cdas.cli import main
from cdas.client import AsyncRestClient, GrpcClient, RestClient
from cdas.coordinator import DEFAULT_PAGE, MAX_PAGE
from cdas.core.views import PromptColumns, PromptInfo, PromptPage
from cdas.export import COLUMNS, write
from cdas.service.rest.app import create_app
from cdas.store.base import Operation
from cdas.store.redis.keys import RunKeys
from cdas.v1 import coordinator_pb2 as pb
from tests.redis_servers import RedisServer
from tests.services import grpc_target, rest_url, running_service
from tests.test_service_errors import assert_grpc_error, assert_rest_error, grpc_failure, stub_of

T = TypeVar("T")

EXPLICIT = ["alpha", "β-prompt", "with,comma", 'with "quotes"', "two\nlines"]
"""Ids after the 30 counted ones: non-ASCII, and what CSV has to quote."""

BIG = 25_000
"""Prompts of the run that takes several default pages (10000 each)."""


def build_run(coord: Any, run_id: str = "r", labels: bool = True) -> None:
    """30 counted prompts and 5 named ones, a third labelled; three steps of results (pass rates
    0 and 1 among them), so some prompts have updates and some have none."""
    counted = {str(i): float(i % 4 + 1) for i in range(0, 30, 3)} if labels else None
    coord.put_run(run_id, prompts=30, seed=5, labels=counted)
    coord.add_prompts(run_id, EXPLICIT, labels={"alpha": 2.5} if labels else None)
    for step in (1, 2, 3):
        batch = coord.next_batch(run_id, step, 8)
        results = [
            {"prompt_id": p, "correct": (k * step) % 9, "total": 8}
            for k, p in enumerate(batch.prompt_ids)
        ]
        coord.report_results(run_id, step, results)


def concatenated(pages: list[PromptPage]) -> PromptColumns:
    """The pages' columns end to end (label None when no page has labels)."""
    labels = [p.columns.label for p in pages if len(p.columns)]
    return PromptColumns(
        prompt_id=[x for p in pages for x in p.columns.prompt_id],
        difficulty=[x for p in pages for x in p.columns.difficulty],
        updates=[x for p in pages for x in p.columns.updates],
        last_pass_rate=[x for p in pages for x in p.columns.last_pass_rate],
        last_step=[x for p in pages for x in p.columns.last_step],
        label=None if all(x is None for x in labels) else [x for c in labels for x in c or []],
    )


# ---------------------------------------------------------------- the library, on both stores
def test_pages_add_up_to_the_run_as_get_prompt_answers_it(coord: cdas.Coordinator) -> None:
    build_run(coord)
    size = coord.get_run("r").size
    whole = coord.prompt_page("r", 0, 100)
    assert (whole.run_id, whole.size, whole.start, whole.next) == ("r", size, 0, None)
    c = whole.columns
    assert c.prompt_id == [str(i) for i in range(30)] + EXPLICIT  # registration order
    assert c.rows() == [coord.get_prompt("r", p) for p in c.prompt_id]
    assert 0 < sum(u > 0 for u in c.updates) < size  # trained prompts and untouched ones
    assert {0.0, 1.0} <= {s for s in c.last_pass_rate if s is not None}

    pages = list(coord.export_prompts("r", page_size=7))
    assert [p.start for p in pages] == [0, 7, 14, 21, 28]
    assert [p.next for p in pages] == [7, 14, 21, 28, None]
    assert all(p.size == size for p in pages)
    assert concatenated(pages) == c


def test_a_range_stops_at_its_limit_and_past_the_end_is_empty(coord: cdas.Coordinator) -> None:
    build_run(coord)
    pages = list(coord.export_prompts("r", page_size=5, start=5, limit=12))
    assert [(p.start, len(p.columns), p.next) for p in pages] == [
        (5, 5, 10),
        (10, 5, 15),
        (15, 2, 17),
    ]
    assert concatenated(pages) == coord.prompt_page("r", 5, 12).columns

    beyond = coord.prompt_page("r", 35, 10)
    assert (beyond.start, beyond.next, len(beyond.columns)) == (35, None, 0)
    assert beyond.columns == PromptColumns()  # label None too: an empty page carries no labels
    assert list(coord.export_prompts("r", start=1000)) == [coord.prompt_page("r", 1000)]

    coord.put_run("empty", prompts=0)
    [page] = coord.export_prompts("empty")
    assert (page.size, page.next, page.columns) == (0, None, PromptColumns())


def test_the_label_column_is_there_when_the_run_has_labels(coord: cdas.Coordinator) -> None:
    build_run(coord, "plain", labels=False)
    assert coord.prompt_page("plain").columns.label is None
    build_run(coord, "labelled")
    labels = coord.prompt_page("labelled").columns.label
    assert labels is not None
    assert labels[:7] == [1.0, None, None, 4.0, None, None, 3.0]
    assert labels[30:] == [2.5, None, None, None, None]


@pytest.mark.parametrize(
    ("call", "field", "value"),
    [
        (lambda c: c.prompt_page("r", -1, 10), "start", "-1"),
        (lambda c: c.prompt_page("r", 0, 0), "limit", "0"),
        (lambda c: c.prompt_page("r", 0, MAX_PAGE + 1), "limit", str(MAX_PAGE + 1)),
        (lambda c: c.prompt_page("r", 0.0, 5), "start", "0.0"),
        (lambda c: c.export_prompts("r", page_size=0), "page_size", "0"),
        (lambda c: c.export_prompts("r", page_size=MAX_PAGE + 1), "page_size", "100001"),
        (lambda c: c.export_prompts("r", start=-3), "start", "-3"),
        (lambda c: c.export_prompts("r", limit=0), "limit", "0"),
        (lambda c: c.prompt_page("bad id!"), "run_id", "'bad id!'"),
    ],
)
def test_bad_arguments_name_the_value(call: Any, field: str, value: str) -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", prompts=3)
    with pytest.raises(cdas.InvalidArgumentError) as info:
        call(coord)
    assert info.value.details["field"] == field
    assert info.value.details["value"] == value
    assert value in info.value.message


def test_a_run_deleted_during_an_export_stops_it(coord: cdas.Coordinator) -> None:
    build_run(coord)
    pages = coord.export_prompts("r", page_size=10)
    first = next(pages)
    coord.delete_run("r")
    with pytest.raises(cdas.RunNotFoundError):
        next(pages)
    assert first.next == 10


def test_an_unknown_run_is_not_found_at_the_call(coord: cdas.Coordinator) -> None:
    with pytest.raises(cdas.RunNotFoundError, match="'nope'"):
        coord.prompt_page("nope")
    with pytest.raises(cdas.RunNotFoundError, match="'nope'"):
        coord.export_prompts("nope")  # the first page is read by the call, not by iterating


def test_a_redis_page_is_a_slice_of_the_run_s_strings(redis_server: RedisServer) -> None:
    """A page of 10 prompts in the middle of 20000 reads those 10 records (one GETRANGE of the
    core records, one of the labels), never the whole run: O(page) whatever the run's size."""
    store = cdas.RedisStore(f"redis://127.0.0.1:{redis_server.port}/12")
    store.client.flushdb()
    coord = cdas.Coordinator(store)
    coord.put_run("big", prompts=20_000, labels={"10005": 3.0})
    ranges: list[tuple[str, int, int]] = []
    getrange = store.client.getrange

    def spy(key: str, start: int, end: int) -> Any:
        ranges.append((key, start, end))
        return getrange(key, start, end)

    store.client.getrange = spy
    try:
        page = coord.prompt_page("big", 10_000, 10)
    finally:
        store.client.getrange = getrange
        store.client.flushdb()
        store.close()
    keys = RunKeys("big")
    assert sorted(ranges) == sorted(
        [(keys.core, 10_000 * 24, 10_010 * 24 - 1), (keys.labels, 10_000 * 8, 10_010 * 8 - 1)]
    )
    assert store.last_round_trips == 3  # LOAD and the two slices
    assert page.columns.prompt_id == [str(i) for i in range(10_000, 10_010)]
    assert page.columns.label == [None] * 5 + [3.0] + [None] * 4


# ---------------------------------------------------------------- the doors
@pytest.fixture(scope="module")
def served() -> Iterator[tuple[cdas.Coordinator, str, str]]:
    """A service over runs "r" (35 prompts, labels, results) and "big" (25000 prompts)."""
    coord = cdas.Coordinator(cdas.MemoryStore())
    build_run(coord)
    coord.put_run("big", prompts=BIG)
    with running_service(coord) as service:
        yield coord, rest_url(service.bound), grpc_target(service.bound)


def follow(http: httpx.Client, run_id: str, limit: int) -> list[dict[str, Any]]:
    """Every JSON page of a run, following ``next``."""
    pages, start = [], 0
    while True:
        answer = http.get(f"/v1/runs/{run_id}/prompts", params={"start": start, "limit": limit})
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        if answer.json()["next"] is None:
            return pages
        start = answer.json()["next"]


def test_rest_json_pages_and_the_clients_answer_as_the_library(
    served: tuple[cdas.Coordinator, str, str],
) -> None:
    coord, url, _ = served
    expected = list(coord.export_prompts("r", page_size=8))
    with httpx.Client(base_url=url) as http:
        assert follow(http, "r", 8) == [p.to_dict() for p in expected]
        default = http.get("/v1/runs/big/prompts").json()  # no limit: a default page
        assert (default["start"], default["next"], default["size"]) == (0, DEFAULT_PAGE, BIG)
    with RestClient(url) as rest:
        assert list(rest.export_prompts("r", page_size=8)) == expected
        assert rest.prompt_page("r", 3, 4) == coord.prompt_page("r", 3, 4)
        assert list(rest.export_prompts("r", 4, start=2, limit=9)) == list(
            coord.export_prompts("r", 4, start=2, limit=9)
        )

    async def in_process() -> list[PromptPage]:
        transport = httpx.ASGITransport(app=create_app(coord))
        async with AsyncRestClient("http://cdas", transport=transport) as client:
            return [page async for page in client.export_prompts("r", page_size=8)]

    assert asyncio.run(in_process()) == expected


def test_rest_csv_streams_the_whole_run(
    served: tuple[cdas.Coordinator, str, str], tmp_path: Path
) -> None:
    coord, url, _ = served
    written = tmp_path / "r.csv"
    write(coord.export_prompts("r"), written)
    with httpx.Client(base_url=url) as http:
        by_query = http.get("/v1/runs/r/prompts", params={"format": "csv"})
        by_accept = http.get("/v1/runs/r/prompts", headers={"accept": "text/csv"})
        big = http.get("/v1/runs/big/prompts?format=csv")  # three pages of the store, one body
        tail = http.get("/v1/runs/big/prompts?format=csv&start=24990&limit=5")
        json_wins = http.get("/v1/runs/r/prompts?format=json", headers={"accept": "text/csv"})
    assert by_query.status_code == 200
    assert by_query.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="r.csv"' in by_query.headers["content-disposition"]
    assert by_query.text == by_accept.text == written.read_text(encoding="utf-8")
    assert read_csv(by_query.text) == rows_of(coord, "r")
    lines = big.text.splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == BIG + 1
    assert lines[-1] == f"{BIG - 1},0.0,0,,,"
    assert tail.text.splitlines()[1:] == [f"{i},0.0,0,,," for i in range(24_990, 24_995)]
    assert json_wins.json()["run_id"] == "r"


def test_rest_refuses_bad_arguments_and_unknown_runs(
    served: tuple[cdas.Coordinator, str, str],
) -> None:
    _, url, _ = served
    with httpx.Client(base_url=url) as http:
        for query, field, value in (
            ("start=-1", "start", "-1"),
            ("limit=0", "limit", "0"),
            (f"limit={MAX_PAGE + 1}", "limit", str(MAX_PAGE + 1)),
            ("limit=ten", "limit", "'ten'"),
            ("format=xml", "format", "'xml'"),
            ("format=csv&limit=0", "limit", "0"),
        ):
            error = assert_rest_error(http.get(f"/v1/runs/r/prompts?{query}"), "invalid_argument")
            assert (error["details"]["field"], error["details"]["value"]) == (field, value), query
            assert value in error["message"]
        for query in ("", "?format=csv"):
            assert_rest_error(http.get(f"/v1/runs/nope/prompts{query}"), "run_not_found", "nope")
        # the export's path sits beside the single prompt's, and neither shadows the other
        assert http.get("/v1/runs/r/prompts/alpha").json()["prompt_id"] == "alpha"
        assert http.post("/v1/runs/r/prompts", json={"ids": []}).json() == {"size": 35}


def test_the_openapi_document_describes_the_export(
    served: tuple[cdas.Coordinator, str, str],
) -> None:
    _, url, _ = served
    schema = httpx.get(f"{url}/openapi.json").json()
    get = schema["paths"]["/v1/runs/{run_id}/prompts"]["get"]
    assert {p["name"] for p in get["parameters"]} == {"run_id", "start", "limit", "format"}
    content = get["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/PromptPage"}
    assert "text/csv" in content
    assert "PromptColumns" in schema["components"]["schemas"]


def test_grpc_streams_the_pages_the_library_reads(
    served: tuple[cdas.Coordinator, str, str],
) -> None:
    coord, _, target = served
    with GrpcClient(target) as client:
        assert list(client.export_prompts("r", page_size=8)) == list(
            coord.export_prompts("r", page_size=8)
        )
        assert client.prompt_page("r", 30, 5) == coord.prompt_page("r", 30, 5)
        assert list(client.export_prompts("r", 3, start=4, limit=7)) == list(
            coord.export_prompts("r", 3, start=4, limit=7)
        )
        assert client.prompt_page("r", 99, 5) == coord.prompt_page("r", 99, 5)
    with grpc.insecure_channel(target) as channel:
        stub = stub_of(channel)
        sizes = [
            (page.start, len(page.columns.prompt_id), page.HasField("next"))
            for page in stub.ExportPrompts(pb.ExportPromptsRequest(run_id="big"))
        ]  # page_size 0: the default
        assert sizes == [(0, 10_000, True), (10_000, 10_000, True), (20_000, 5_000, False)]
        # nulls on the wire: NaN and -1 where a prompt has no updates, NaN where no label
        [page] = stub.ExportPrompts(pb.ExportPromptsRequest(run_id="r"))
        c = page.columns
        for k, updates in enumerate(c.updates):
            assert math.isnan(c.last_pass_rate[k]) == (updates == 0)
            assert (c.last_step[k] == -1) == (updates == 0)
        assert [math.isnan(x) for x in c.label] == [
            x is None for x in coord.prompt_page("r").columns.label or []
        ]
        [plain] = stub.ExportPrompts(pb.ExportPromptsRequest(run_id="big", limit=3))
        assert list(plain.columns.label) == []  # no labels at all


def test_grpc_refuses_bad_arguments_and_unknown_runs(
    served: tuple[cdas.Coordinator, str, str],
) -> None:
    _, _, target = served
    with grpc.insecure_channel(target) as channel:
        stub = stub_of(channel)
        for request, field in (
            (pb.ExportPromptsRequest(run_id="r", page_size=-1), "page_size"),
            (pb.ExportPromptsRequest(run_id="r", page_size=MAX_PAGE + 1), "page_size"),
            (pb.ExportPromptsRequest(run_id="r", start=-1), "start"),
            (pb.ExportPromptsRequest(run_id="r", limit=-2), "limit"),
        ):
            failure = grpc_failure(partial(list, stub.ExportPrompts(request)))
            assert_grpc_error(failure, "invalid_argument", field)
        failure = grpc_failure(
            lambda: list(stub.ExportPrompts(pb.ExportPromptsRequest(run_id="x")))
        )
        assert_grpc_error(failure, "run_not_found", "'x'")


# ---------------------------------------------------------------- cdas export
def rows_of(coord: cdas.Coordinator, run_id: str) -> list[dict[str, Any]]:
    """The run's prompts as ``get_prompt`` answers them, one dict each."""
    columns = coord.prompt_page(run_id, 0, MAX_PAGE).columns
    return [row.to_dict() for row in columns.rows()]


def read_csv(text: str) -> list[dict[str, Any]]:
    """An export's CSV back as typed rows (empty fields are null)."""

    def number(kind: type, field: str) -> Any:
        return None if field == "" else kind(field)

    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return [
        {
            "prompt_id": row["prompt_id"],
            "difficulty": float(row["difficulty"]),
            "updates": int(row["updates"]),
            "last_pass_rate": number(float, row["last_pass_rate"]),
            "last_step": number(int, row["last_step"]),
            "label": number(float, row["label"]),
        }
        for row in reader
    ]


def test_cdas_export_writes_csv_and_parquet_that_read_back_equal(
    served: tuple[cdas.Coordinator, str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    coord, url, target = served
    expected = rows_of(coord, "r")
    as_csv, as_parquet = tmp_path / "r.csv", tmp_path / "out" / "r.parquet"
    as_parquet.parent.mkdir()
    assert main(["export", "r", "--out", str(as_csv), "--url", url]) == 0
    assert (
        main(["export", "r", "--out", str(as_parquet), f"--url=grpc://{target}", "--page-size=8"])
        == 0
    )
    assert "wrote 35 prompts of run 'r'" in capsys.readouterr().out

    assert read_csv(as_csv.read_text(encoding="utf-8")) == expected
    table = pq.read_table(as_parquet)
    assert tuple(table.column_names) == COLUMNS
    assert str(table.schema.field("updates").type) == "int64"
    assert table.to_pylist() == expected
    assert pq.ParquetFile(as_parquet).num_row_groups == 5  # a row group per page of 8
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "r.csv", "r.parquet"]


def test_cdas_export_reads_an_embedded_state_file(tmp_path: Path) -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    build_run(coord, labels=False)
    state = tmp_path / "state.zip"
    assert isinstance(coord.store, cdas.MemoryStore)
    coord.store.save(state)
    out = tmp_path / "r.parquet"
    assert main(["export", "r", "--state-file", str(state), "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.to_pylist() == rows_of(coord, "r")
    assert table.column("label").null_count == 35


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["export", "r", "--out", "x.csv"], "say where the run is"),
        (
            ["export", "r", "--out", "x.json", "--url", "http://127.0.0.1:9"],
            "name a .csv or .parquet",
        ),
        (["export", "r", "--out", "x.csv", "--url", "http://h", "--state-file", "s"], "give one"),
    ],
)
def test_cdas_export_refuses_what_it_cannot_do(
    argv: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=says):
        main(argv)
    assert list(tmp_path.iterdir()) == []


def test_cdas_export_of_an_unknown_run_leaves_no_file(tmp_path: Path) -> None:
    state = tmp_path / "state.zip"
    cdas.MemoryStore().save(state)
    out = tmp_path / "nope.csv"
    with pytest.raises(SystemExit, match="run 'nope' does not exist"):
        main(["export", "nope", "--state-file", str(state), "--out", str(out)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.zip"]


def test_prompt_columns_rows_are_prompt_infos() -> None:
    columns = PromptColumns(["a", "b"], [0.5, 0.0], [2, 0], [0.25, None], [7, None], None)
    assert columns.rows() == [PromptInfo("a", 0.5, 2, 0.25, 7), PromptInfo("b", 0.0, 0, None, None)]
    assert PromptPage.from_dict(PromptPage("r", 2, 0, None, columns).to_dict()).columns == columns


def test_clients_go_on_after_a_page_the_store_could_not_read() -> None:
    """The store fails on the second page once: the gRPC stream ends there with UNAVAILABLE and
    the client reopens it at that page; the REST client retries that page's GET. Both end with
    exactly the library's pages."""
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("big", prompts=BIG)
    expected = list(coord.export_prompts("big"))
    transact = coord.store.transact
    calls = 0

    def flaky(run_id: str, operation: Operation[T]) -> T:
        nonlocal calls
        if operation.name == "prompt_page":
            calls += 1
            if calls == 2:
                raise cdas.StoreUnavailableError("the store is away for one read")
        return transact(run_id, operation)

    coord.store.transact = flaky  # type: ignore[method-assign]
    with running_service(coord) as service:
        with GrpcClient(grpc_target(service.bound)) as rpc:
            assert list(rpc.export_prompts("big")) == expected
        assert calls == len(expected) + 1
        calls = 0
        with RestClient(rest_url(service.bound)) as rest:
            assert list(rest.export_prompts("big")) == expected
        assert calls == len(expected) + 1
