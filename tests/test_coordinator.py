"""The library's contract (``shared/API.md``): runs, batches, results, reads, snapshots."""

from __future__ import annotations

import numpy as np
import pytest

import cdas
from cdas.core.strategies import REGISTRY
from tests.conftest import assert_same_state, logical_state


def test_put_run_creates_then_answers_the_same_run(coord: cdas.Coordinator) -> None:
    first = coord.put_run("r", strategy="cdas", params={}, seed=3, prompts={"count": 100})
    assert first.created
    assert first.size == 100
    assert first.step is None
    assert first.params == {
        "warmup": True,
        "retire_after": 0,  # the CDAS variants, off: the paper
        "retest_share": 0.05,
        "min_weight": 0.0,
        "mix_share": 0.0,
        "threshold": 0.5,
    }
    again = coord.put_run(
        "r", strategy="cdas", params={"warmup": True}, seed=3, prompts={"count": 100}
    )
    assert not again.created
    assert again.to_dict() == first.to_dict()
    assert [r.run_id for r in coord.list_runs()] == ["r"]


def test_every_strategy_serves_distinct_batches(coord: cdas.Coordinator) -> None:
    rng = np.random.default_rng(0)
    p = rng.random(200)
    for name in sorted(REGISTRY):
        labels = {str(i): i % 3 for i in range(200)}
        coord.put_run(name, strategy=name, prompts=200, labels=labels, seed=1)
        for step in range(12):
            batch = coord.next_batch(name, step, 32)
            assert len(set(batch.prompt_ids)) == 32
            coord.report_results(
                name,
                step,
                [
                    {"prompt_id": x, "correct": int(rng.binomial(8, p[int(x)])), "total": 8}
                    for x in batch.prompt_ids
                ],
            )
        state = coord.get_state(name)
        assert [h.step for h in state.history] == list(range(12))
        assert all(
            h.results == 32 and h.rollouts == 256 and h.batch_size == 32 for h in state.history
        )


def test_next_batch_is_idempotent_per_step_and_round(coord: cdas.Coordinator) -> None:
    coord.put_run("r", prompts=50)
    a = coord.next_batch("r", 7, 10)
    coord.report_results("r", 7, [{"prompt_id": p, "correct": 8, "total": 8} for p in a.prompt_ids])
    coord.next_batch("r", 8, 10)
    assert coord.next_batch("r", 7, 10) == a  # whatever happened since
    b = coord.next_batch("r", 7, 5, round=1)
    assert not set(a.prompt_ids) & set(b.prompt_ids)
    assert coord.next_batch("r", 7, 5, round=1) == b
    assert coord.get_run("r").batches == 3


def test_results_are_applied_at_most_once_per_step_and_prompt(coord: cdas.Coordinator) -> None:
    coord.put_run("r", prompts=20)
    batch = coord.next_batch("r", 1, 4)
    results = [{"prompt_id": p, "correct": 2, "total": 8} for p in batch.prompt_ids]
    first = coord.report_results("r", 1, results)
    assert (first.applied, first.duplicates) == (4, 0)
    state = logical_state(coord, "r")
    retry = coord.report_results("r", 1, results)
    assert (retry.applied, retry.duplicates) == (0, 4)
    assert retry.competence == first.competence
    meta, arrays = logical_state(coord, "r")
    state[0]["counts"]["duplicates"] += 4
    assert_same_state((meta, arrays), state)
    # a partially new request applies only the new ones; the same prompt at another step is new
    other = next(str(i) for i in range(20) if str(i) not in batch.prompt_ids)
    mixed = coord.report_results(
        "r", 1, [*results[:2], {"prompt_id": other, "correct": 1, "total": 8}]
    )
    assert (mixed.applied, mixed.duplicates) == (1, 2)
    assert coord.report_results("r", 2, results[:1]).applied == 1
    assert coord.get_prompt("r", batch.prompt_ids[0]).updates == 2


def test_three_result_forms_and_the_threshold(coord: cdas.Coordinator) -> None:
    coord.put_run("r", params={"threshold": 0.7, "warmup": False}, prompts=3)
    coord.report_results(
        "r",
        0,
        [
            {"prompt_id": "0", "correct": 3, "total": 4},
            {"prompt_id": "1", "rewards": [0.9, 0.7, 0.8, 0.1]},  # 0.7 is not above 0.7
            cdas.Result(prompt_id="2", pass_rate=0.25, total=4),
        ],
    )
    assert coord.get_prompt("r", "0").last_pass_rate == 0.75
    assert coord.get_prompt("r", "1").last_pass_rate == 0.5
    assert coord.get_prompt("r", "2").last_pass_rate == 0.25
    summary = coord.get_state("r").history[0]
    assert summary.rollouts == 12
    assert summary.zero_gradient_ratio == 0.0
    coord.report_results(
        "r",
        1,
        [
            {"prompt_id": "0", "correct": 4, "total": 4},
            {"prompt_id": "1", "rewards": [0.3, 0.3]},
            {"prompt_id": "2", "pass_rate": 0.5, "total": 2},
        ],
    )
    assert coord.get_state("r").history[1].zero_gradient_ratio == pytest.approx(2 / 3)


def test_get_prompt_and_state(coord: cdas.Coordinator) -> None:
    coord.put_run("r", prompts=["a", "b", "c"], labels={"a": 1, "c": 3}, params={"warmup": False})
    info = coord.get_prompt("r", "b")
    assert info.to_dict() == {
        "prompt_id": "b",
        "difficulty": 0.0,
        "updates": 0,
        "last_pass_rate": None,
        "last_step": None,
        "label": None,
    }
    coord.report_results("r", 4, [{"prompt_id": "c", "correct": 0, "total": 8}])
    c = coord.get_prompt("r", "c")
    assert (c.updates, c.last_pass_rate, c.last_step, c.label) == (1, 0.0, 4, 3.0)
    assert c.difficulty == pytest.approx(0.5)  # sigmoid(0) - 0
    state = coord.get_state("r")
    assert state.seen == 1
    assert state.size == 3
    assert state.step == 4
    assert state.competence == pytest.approx(-0.5 / 3)
    assert sum(state.histogram_counts) == 1
    assert state.histogram_counts[30] == 1  # bin [0.5, 0.55)
    assert len(state.histogram_edges) == len(state.histogram_counts) + 1
    assert state.to_dict()["history"][0]["mean_pass_rate"] == 0.0


def test_add_prompts_in_chunks_and_explicit_ids(coord: cdas.Coordinator) -> None:
    coord.put_run("r", prompts={"count": 3})
    assert coord.add_prompts("r", {"count": 2}) == 5
    assert coord.add_prompts("r", ["row-9", "naïve ∑", "12"]) == 8
    assert coord.get_prompt("r", "naïve ∑").prompt_id == "naïve ∑"
    assert coord.get_prompt("r", "4").updates == 0
    ids = {p for step in range(4) for p in coord.next_batch("r", step, 8).prompt_ids}
    assert ids == {"0", "1", "2", "3", "4", "row-9", "naïve ∑", "12"}


def test_runs_are_independent(coord: cdas.Coordinator) -> None:
    coord.put_run("a", prompts=30, seed=1)
    coord.put_run("b", prompts=30, seed=1)
    batch = coord.next_batch("a", 1, 10)
    coord.report_results(
        "a", 1, [{"prompt_id": p, "correct": 0, "total": 8} for p in batch.prompt_ids]
    )
    assert coord.get_run("b").competence == 0.0
    assert coord.get_run("b").batches == 0
    assert coord.next_batch("b", 1, 10) == cdas.Batch("b", 1, 0, batch.prompt_ids, 0.0)
    coord.delete_run("a")
    with pytest.raises(cdas.RunNotFoundError):
        coord.get_run("a")
    assert [r.run_id for r in coord.list_runs()] == ["b"]


def test_snapshot_restores_under_another_id(coord: cdas.Coordinator) -> None:
    coord.put_run("a", strategy="mopps", prompts=40, seed=2)
    for step in range(3):
        batch = coord.next_batch("a", step, 8)
        coord.report_results(
            "a", step, [{"prompt_id": p, "correct": 5, "total": 8} for p in batch.prompt_ids]
        )
    blob = coord.snapshot("a")
    info = coord.restore("b", blob)
    assert info.run_id == "b"
    assert info.size == 40
    assert coord.next_batch("b", 3, 8).prompt_ids == coord.next_batch("a", 3, 8).prompt_ids
    assert coord.next_batch("b", 1, 8).prompt_ids == coord.next_batch("a", 1, 8).prompt_ids


def test_store_saves_and_loads_every_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = cdas.MemoryStore()
    coord = cdas.Coordinator(store)
    coord.put_run("a", prompts=["x", "y", "z"], seed=1)
    coord.put_run("b", strategy="prioritized", prompts=10)
    coord.report_results("a", 0, [{"prompt_id": "y", "correct": 1, "total": 4}])
    store.save(tmp_path / "state.cdas")
    loaded = cdas.Coordinator(cdas.MemoryStore.load(tmp_path / "state.cdas"))
    assert loaded.list_runs() == coord.list_runs()
    assert_same_state(logical_state(loaded, "a"), logical_state(coord, "a"))
    assert loaded.next_batch("b", 0, 5) == coord.next_batch("b", 0, 5)
    assert cdas.MemoryStore.load(tmp_path / "missing").run_ids() == []


def test_public_exports_are_honest() -> None:
    for name in cdas.__all__:
        assert hasattr(cdas, name), name
    assert isinstance(cdas.MemoryStore(), cdas.Store)


def test_a_count_after_explicit_ids_cannot_collide(coord: cdas.Coordinator) -> None:
    coord.put_run("r", prompts=5)
    coord.add_prompts("r", ["7"])  # index 5, explicitly named "7"
    with pytest.raises(cdas.InvalidArgumentError, match="'7' is already registered"):
        coord.add_prompts("r", {"count": 3})  # would be "6", "7", "8"
    assert coord.add_prompts("r", {"count": 1}) == 7  # "6"
    assert coord.get_prompt("r", "6").updates == 0
    ids = {p for step in range(7) for p in coord.next_batch("r", step, 7).prompt_ids}
    assert ids == {"0", "1", "2", "3", "4", "7", "6"}
