"""Statistical tests of the selectors (as Reverb tests its selectors): many draws with fixed seeds,
frequencies compared to the intended probabilities with chi-square tests at alpha = 1e-4."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from scipy import stats

import cdas

ALPHA = 1e-4


def _chi2_uniform(counts: list[int]) -> float:
    return float(stats.chisquare(counts).pvalue)


def test_ties_are_broken_uniformly_at_random() -> None:
    """All 24 prompts tie at D = 0 (a fresh run without warm-up); a batch of 6 takes them by the
    tie keys: over many seeds every prompt is equally likely, whatever its insertion order."""
    counts = Counter[int]()
    for seed in range(3000):
        coord = cdas.Coordinator(cdas.MemoryStore())
        coord.put_run("r", params={"warmup": False}, prompts=24, seed=seed)
        counts.update(int(p) for p in coord.next_batch("r", 1, 6).prompt_ids)
    assert sum(counts.values()) == 18000
    assert _chi2_uniform([counts[i] for i in range(24)]) > ALPHA


def test_ties_formed_by_updates_are_broken_uniformly() -> None:
    """Prompts updated at the same step with the same pass rate share exactly one D; which of them
    the next batch takes is uniform (the keys are redrawn at each update), not insertion order."""
    counts = Counter[int]()
    for seed in range(1500):
        coord = cdas.Coordinator(cdas.MemoryStore())
        coord.put_run("r", params={"warmup": False}, prompts=40, seed=seed)
        # prompts 0-19 all get pass rate 0.5 -> D = sigmoid(0) - 0.5 = 0 exactly; 20-39 get 1.0
        coord.report_results(
            "r",
            0,
            [{"prompt_id": str(i), "correct": 4 if i < 20 else 8, "total": 8} for i in range(40)],
        )
        batch = coord.next_batch("r", 1, 4)  # C > 0: the 20 tied prompts are B-, nearest C
        chosen = [int(p) for p in batch.prompt_ids]
        assert sum(1 for x in chosen if x < 20) >= 2
        counts.update(x for x in chosen if x < 20)
    assert _chi2_uniform([counts[i] for i in range(20)]) > ALPHA


def _successive_inclusion(weights: np.ndarray, k: int) -> np.ndarray:
    """Exact inclusion probabilities of successive sampling (draw proportional to weight, remove,
    repeat), by enumerating every ordered draw."""
    n = weights.size
    out = np.zeros(n)
    for seq in itertools.permutations(range(n), k):
        p, left = 1.0, weights.sum()
        for x in seq:
            p *= weights[x] / left
            left -= weights[x]
        for x in seq:
            out[x] += p
    return out


@pytest.mark.parametrize("size", [1, 3])
def test_prioritized_frequencies_match_one_minus_pass_rate(size: int) -> None:
    rates = [0.0, 0.25, 0.5, 0.75, 0.875, 1.0]  # weights 1, .75, .5, .25, .125, 0
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("p", strategy="prioritized", prompts=len(rates), seed=5)
    coord.report_results(
        "p", 0, [{"prompt_id": str(i), "pass_rate": s, "total": 8} for i, s in enumerate(rates)]
    )
    draws = 20000
    counts = Counter[int]()
    for step in range(1, draws + 1):
        counts.update(int(p) for p in coord.next_batch("p", step, size).prompt_ids)
    assert counts[5] == 0  # solved prompts (s = 1) are never drawn while others remain
    expected = _successive_inclusion(1.0 - np.array(rates), size)[:5] * draws
    observed = [counts[i] for i in range(5)]
    assert (
        float(stats.chisquare(observed, expected * sum(observed) / expected.sum()).pvalue) > ALPHA
    )


def test_prioritized_draws_solved_prompts_only_when_nothing_else_is_left() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("p", strategy="prioritized", prompts=10, seed=1)
    coord.report_results(
        "p", 0, [{"prompt_id": str(i), "correct": 8 if i < 7 else 2, "total": 8} for i in range(10)]
    )
    batch = [int(p) for p in coord.next_batch("p", 1, 5).prompt_ids]
    assert {7, 8, 9} <= set(batch)  # the three unsolved first, then two solved, uniformly
    counts = Counter[int]()
    for step in range(2, 6002):
        counts.update(int(p) for p in coord.next_batch("p", step, 5).prompt_ids if int(p) < 7)
    assert _chi2_uniform([counts[i] for i in range(7)]) > ALPHA


def test_curriculum_admits_only_the_scheduled_labels() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    labels = {str(i): i % 5 + 1 for i in range(500)}
    schedule = [
        {"until_step": 10, "max_label": 2},
        {"until_step": 20, "min_label": 2, "max_label": 4},
        {"min_label": 4},
    ]
    coord.put_run(
        "c", strategy="curriculum", params={"schedule": schedule}, prompts=500, labels=labels
    )
    seen_stage0: list[int] = []
    for step in range(30):
        chosen = [int(p) for p in coord.next_batch("c", step, 50).prompt_ids]
        levels = {labels[str(x)] for x in chosen}
        if step < 10:
            assert levels <= {1, 2}
            seen_stage0 += chosen
        elif step < 20:
            assert levels <= {2, 3, 4}
        else:
            assert levels <= {4, 5}
    # within a stage, an epoch of the admitted set visits every admitted prompt once
    admitted = [i for i in range(500) if labels[str(i)] <= 2]
    assert sorted(seen_stage0[:200]) == admitted
    counts = Counter(labels[str(x)] for x in seen_stage0)
    assert abs(counts[1] - counts[2]) <= 50


def test_warmup_samples_every_prompt_exactly_once_in_the_first_epoch() -> None:
    n, size = 1000, 64
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("w", prompts=n, seed=9)
    rng = np.random.default_rng(0)
    first_epoch: list[int] = []
    for step in range(1, n // size + 2):
        batch = coord.next_batch("w", step, size)
        first_epoch += [int(p) for p in batch.prompt_ids]
        coord.report_results(
            "w",
            step,
            [
                {"prompt_id": p, "correct": int(rng.integers(0, 9)), "total": 8}
                for p in batch.prompt_ids
            ],
        )
    head = first_epoch[:n]
    assert sorted(head) == list(range(n))
    # and the order is uniform: position of each prompt in the epoch is not its index
    assert abs(stats.spearmanr(head, range(n)).statistic) < 0.15


def test_warmup_order_is_uniform_over_seeds() -> None:
    counts = Counter[int]()
    for seed in range(2000):
        coord = cdas.Coordinator(cdas.MemoryStore())
        coord.put_run("w", prompts=30, seed=seed)
        counts.update(int(p) for p in coord.next_batch("w", 1, 5).prompt_ids)
    assert _chi2_uniform([counts[i] for i in range(30)]) > ALPHA


def test_random_sampling_is_uniform_without_replacement_per_epoch() -> None:
    n = 97
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("r", strategy="random", prompts=n, seed=2)
    drawn = [int(p) for step in range(97) for p in coord.next_batch("r", step, 10).prompt_ids]
    for epoch in range(10):
        assert sorted(drawn[epoch * n : (epoch + 1) * n]) == list(range(n))
    position = Counter[int]()
    for seed in range(2000):
        c = cdas.Coordinator(cdas.MemoryStore())
        c.put_run("r", strategy="random", prompts=20, seed=seed)
        position.update(int(p) for p in c.next_batch("r", 0, 3).prompt_ids)
    assert _chi2_uniform([position[i] for i in range(20)]) > ALPHA


def test_mopps_prefers_prompts_predicted_near_the_target() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("m", strategy="mopps", params={"candidates": 4}, prompts=40, seed=4)
    # 0-9 always solved, 10-19 never, 20-39 half the time: posteriors sharpen around 1, 0, 0.5
    for step in range(20):
        coord.report_results(
            "m",
            step,
            [
                {"prompt_id": str(i), "correct": 8 if i < 10 else 0 if i < 20 else 4, "total": 8}
                for i in range(40)
            ],
        )
    picks = Counter[int]()
    for step in range(100, 400):
        picks.update(int(p) for p in coord.next_batch("m", step, 10).prompt_ids)
    balanced = sum(picks[i] for i in range(20, 40))
    assert balanced / sum(picks.values()) > 0.95


def test_learnability_prefers_prompts_with_largest_p_times_one_minus_p() -> None:
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("l", strategy="learnability", params={"candidates": 4}, prompts=80, seed=4)
    coord.report_results(
        "l",
        0,
        [{"prompt_id": str(i), "correct": [0, 8, 4, 1][i % 4], "total": 8} for i in range(80)],
    )
    picks = Counter[int]()
    for step in range(1, 200):
        picks.update(int(p) % 4 for p in coord.next_batch("l", step, 10).prompt_ids)
    # scores: p=0 and p=1 -> 0, p=1/2 -> .25, p=1/8 -> .109
    assert picks[2] > picks[3] > picks[0] + picks[1]
