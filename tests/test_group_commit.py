"""Streamed results: 64 writers posting single groups (each twice) into one run, on the memory
store, on Redis, and on Redis through two replicas, end in the state of the same results applied
in one call; every group is applied once, every repeat is counted a duplicate, and a refused
report in a group is refused alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import cdas
from cdas.core.errors import InvalidArgumentError
from tests.conftest import assert_same_state, group_results, logical_state
from tests.redis_servers import RedisServer

N, B, G, WRITERS = 256, 128, 8, 64


def _results(batch: cdas.Batch, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return group_results(batch.prompt_ids, rng.uniform(0, 1, N), rng, G)


def _stream(coordinators: list[cdas.Coordinator], step: int, posts: list[Any]) -> list[Any]:
    """``WRITERS`` threads, writer k through ``coordinators[k % len]``, posting ``posts`` (each
    a single group) round-robin, all released at once; the answers in post order."""
    answers: list[Any] = [None] * len(posts)
    start = threading.Barrier(WRITERS)

    def write(k: int) -> None:
        coordinator = coordinators[k % len(coordinators)]
        start.wait()
        for i in range(k, len(posts), WRITERS):
            try:
                answers[i] = coordinator.report_results("r", step, [posts[i]])
            except cdas.CdasError as refused:
                answers[i] = refused

    threads = [threading.Thread(target=write, args=(k,)) for k in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.fixture(params=["memory", "redis", "two replicas on redis"])
def replicas(request: pytest.FixtureRequest) -> Iterator[list[cdas.Coordinator]]:
    if request.param == "memory":
        yield [cdas.Coordinator(cdas.MemoryStore())]
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    url = f"{server.url}/13"
    stores = [cdas.RedisStore(url) for _ in range(1 if request.param == "redis" else 2)]
    stores[0].client.flushdb()
    yield [cdas.Coordinator(store) for store in stores]
    stores[0].client.flushdb()
    for store in stores:
        store.close()


def test_single_groups_from_64_writers_end_as_one_call(
    replicas: list[cdas.Coordinator],
) -> None:
    first = replicas[0]
    first.put_run("r", prompts=N, seed=5)
    replay = cdas.Coordinator(cdas.MemoryStore())
    replay.put_run("r", prompts=N, seed=5)
    for step in range(3):  # three steps: later ones start from what the streamed ones left
        batch = first.next_batch("r", step, B)
        assert replay.next_batch("r", step, B) == batch
        results = _results(batch, step)
        posts = results + results[::-1]  # every group twice, the repeat from another writer
        answers = _stream(replicas, step, posts)
        assert all(isinstance(a, cdas.ReportOutcome) for a in answers), answers
        assert sum(a.applied for a in answers) == B
        assert sum(a.duplicates for a in answers) == B
        assert all(a.applied + a.duplicates == 1 for a in answers)
        replay.report_results("r", step, results)
        assert replay.report_results("r", step, results).duplicates == B
    assert_same_state(logical_state(first, "r"), logical_state(replay, "r"))
    assert first.get_run("r").to_dict() == replay.get_run("r").to_dict()


def test_a_busy_run_commits_in_groups(redis_server: RedisServer) -> None:
    """On Redis a commit takes a round trip or more, so 64 writers released at once find one
    under way and queue behind it: fewer transactions than reports."""
    store = cdas.RedisStore(f"{redis_server.url}/12")
    store.client.flushdb()
    try:
        coordinator = cdas.Coordinator(store)
        coordinator.put_run("r", prompts=N)
        batch = coordinator.next_batch("r", 0, B)
        _stream([coordinator], 0, _results(batch, 0))
        assert coordinator.get_run("r").results == B
        assert coordinator.commits.transactions < B
    finally:
        store.client.flushdb()
        store.close()


def test_a_refused_report_in_a_group_is_refused_alone(
    replicas: list[cdas.Coordinator],
) -> None:
    """Writers post good groups and groups naming unknown prompts at once: each bad one gets
    the error naming its prompt, every good one is applied, and the state is the good ones'."""
    first = replicas[0]
    first.put_run("r", prompts=N, seed=2)
    replay = cdas.Coordinator(cdas.MemoryStore())
    replay.put_run("r", prompts=N, seed=2)
    batch = first.next_batch("r", 0, B)
    replay.next_batch("r", 0, B)
    good = _results(batch, 9)
    bad = [{"prompt_id": f"missing-{k}", "correct": 1, "total": G} for k in range(B // 2)]
    posts = [post for pair in zip(good, bad + bad, strict=True) for post in pair]
    answers = _stream(replicas, 0, posts)
    for post, answer in zip(posts, answers, strict=True):
        if str(post["prompt_id"]).startswith("missing-"):
            assert isinstance(answer, InvalidArgumentError)
            assert answer.details["value"] == post["prompt_id"]
        else:
            assert isinstance(answer, cdas.ReportOutcome)
    assert sum(a.applied for a in answers if isinstance(a, cdas.ReportOutcome)) == B
    replay.report_results("r", 0, good)
    assert_same_state(logical_state(first, "r"), logical_state(replay, "r"))


def test_reports_at_several_steps_share_groups_and_each_applies_once(
    replicas: list[cdas.Coordinator],
) -> None:
    """Posts for four steps at once, each twice, interleaved: groups then hold reports of
    several steps (on Redis, steps beyond the first are read inside the transaction, and a
    step's record written by one report is what the next report of the group reads, also for a
    step without a batch, whose record the first report creates). Each (step, prompt) is
    applied once: the applied sets are the batches, the repeats duplicates."""
    first = replicas[0]
    first.put_run("r", prompts=N, strategy="random", seed=4)
    batches = [first.next_batch("r", step, B // 2) for step in range(4)]
    posts = [(b.step, r) for b in batches for r in _results(b, b.step)]
    unissued = [str(k) for k in range(16)]  # step 4 has no batch: its record starts empty
    posts += [(4, {"prompt_id": p, "correct": 3, "total": G}) for p in unissued]
    posts += posts[::-1]
    order = np.random.default_rng(0).permutation(len(posts))
    answers: list[Any] = [None] * len(posts)
    start = threading.Barrier(WRITERS)

    def write(k: int) -> None:
        coordinator = replicas[k % len(replicas)]
        start.wait()
        for i in order[k::WRITERS]:
            step, result = posts[i]
            answers[i] = coordinator.report_results("r", step, [result])

    threads = [threading.Thread(target=write, args=(k,)) for k in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    distinct = 2 * B + len(unissued)
    assert sum(a.applied for a in answers) == distinct
    assert sum(a.duplicates for a in answers) == distinct
    meta, arrays = logical_state(first, "r")
    assert meta["counts"]["results"] == distinct
    assert meta["counts"]["duplicates"] == distinct
    for batch in batches:
        applied = arrays[f"step{batch.step}_applied"]
        assert sorted(applied.tolist()) == sorted(int(p) for p in batch.prompt_ids)
    assert sorted(arrays["step4_applied"].tolist()) == list(range(16))
