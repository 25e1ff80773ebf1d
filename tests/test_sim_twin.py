"""The training twin's model (``cdas.sim.twin``), held to the formulas of its docstring."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from scipy.special import expit

from cdas.sim.calibrate import FREE
from cdas.sim.twin import LEVELS, Twin, TwinParams, describe_params

SMALL = TwinParams().with_(prompts=3000, heldout=2000, batch=16, hard=1e6)
"""Small, with the hard tail out of reach (``hard`` 1e6): never solved, whatever is learned."""


def _idx(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _finite_prompts(twin: Twin, n: int) -> np.ndarray:
    """``n`` ordinary prompts: neither in the hard tail nor solved from the start."""
    return np.flatnonzero(np.isfinite(twin.b) & ~twin.tail)[:n].astype(np.int64)


def test_signal_is_the_normalized_reward_variance() -> None:
    twin = Twin(SMALL, seed=0)
    k = np.arange(0, 9, dtype=np.int64)
    expected = np.array([4 * j * (8 - j) / 64 for j in range(9)])
    np.testing.assert_array_equal(twin.signal(k), expected)
    assert twin.signal(_idx(4))[0] == 1.0
    assert twin.signal(_idx(0, 8)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("k", [0, 8])
def test_a_zero_variance_group_changes_neither_theta_nor_u(k: int) -> None:
    twin = Twin(SMALL, seed=1)
    idx = _finite_prompts(twin, 5)
    theta, u = twin.theta, twin.u.copy()
    strength = twin.learn(idx, np.full(idx.size, k, dtype=np.int64))
    assert strength == 0.0
    assert twin.theta == theta
    np.testing.assert_array_equal(twin.u, u)


def test_an_informative_group_moves_theta_and_u_by_the_docstring_formulas() -> None:
    p = SMALL
    twin = Twin(p, seed=2)
    a, b, c = _finite_prompts(twin, 3).tolist()
    theta0, u0 = twin.theta, twin.u.copy()
    # k = 2 of 8: v = 4 * 2 * 6 / 64 = 0.75; k = 4: v = 1; k = 8: v = 0 (all right)
    strength = twin.learn(_idx(a, b, c), _idx(2, 4, 8))
    signal_sum = 0.75 + 1.0 + 0.0
    assert strength == pytest.approx(signal_sum / p.batch, abs=1e-15)
    expected_theta = theta0 + p.transfer * (p.ceiling - theta0) * (signal_sum / p.batch)
    assert twin.theta == pytest.approx(expected_theta, abs=1e-15)
    assert twin.theta > theta0
    expected_u = u0.copy()
    expected_u[a] += p.specific * 0.75
    expected_u[b] += p.specific * 1.0
    np.testing.assert_allclose(twin.u, expected_u, rtol=0, atol=1e-15)
    assert twin.u[c] == 0.0
    # only the trained prompts changed
    changed = np.flatnonzero(twin.u != u0)
    assert sorted(changed.tolist()) == sorted([a, b])


def test_a_prompt_trained_twice_in_a_step_gains_twice() -> None:
    twin = Twin(SMALL, seed=3)
    (a,) = _finite_prompts(twin, 1).tolist()
    twin.learn(_idx(a, a), _idx(4, 4))
    assert twin.u[a] == pytest.approx(2 * SMALL.specific)


def test_pass_probability_is_sigmoid_of_theta_plus_u_minus_b() -> None:
    twin = Twin(SMALL, seed=4)
    idx = _finite_prompts(twin, 50)
    twin.learn(idx[:10], np.full(10, 3, dtype=np.int64))
    expected = expit(twin.theta + twin.u[idx] - twin.b[idx])
    np.testing.assert_allclose(twin.pass_probability(idx), expected, rtol=1e-12)


def test_unsolvable_and_solved_prompts_stay_at_exactly_zero_and_one() -> None:
    twin = Twin(SMALL, seed=5)
    never = np.flatnonzero(twin.tail).astype(np.int64)[:20]
    always = np.flatnonzero(twin.b == -np.inf).astype(np.int64)[:20]
    assert never.size == 20
    assert always.size == 20
    both = np.concatenate([never, always])
    for _ in range(50):  # lots of learning, even (artificially) on those very prompts
        twin.learn(both, np.full(both.size, 4, dtype=np.int64))
    assert twin.u[never].min() > 10.0
    assert twin.theta > SMALL.ability + 1.0
    assert np.all(twin.pass_probability(never) == 0.0)
    assert np.all(twin.pass_probability(always) == 1.0)
    assert np.all(twin.rollout(never) == 0)
    assert np.all(twin.rollout(always) == SMALL.group)


@pytest.mark.parametrize("transfer", [SMALL.transfer, 0.95])
def test_theta_rises_toward_the_ceiling_and_never_passes_it(transfer: float) -> None:
    p = SMALL.with_(transfer=transfer)
    twin = Twin(p, seed=6)
    idx = _finite_prompts(twin, p.batch)
    k = np.full(p.batch, p.group // 2, dtype=np.int64)  # every group at full signal
    previous = twin.theta
    for _ in range(400):
        assert twin.learn(idx, k) == 1.0
        assert twin.theta <= p.ceiling
        assert twin.theta >= previous
        previous = twin.theta
    assert twin.theta == pytest.approx(p.ceiling, abs=1e-9)


def test_theta_stays_under_the_ceiling_through_training_rollouts() -> None:
    twin = Twin(SMALL, seed=7)
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = rng.choice(SMALL.prompts, SMALL.batch, replace=False).astype(np.int64)
        twin.learn(idx, twin.rollout(idx))
        assert twin.theta < SMALL.ceiling


def test_the_same_seed_gives_the_same_world_and_rollouts() -> None:
    one, two = Twin(SMALL, seed=11), Twin(SMALL, seed=11)
    np.testing.assert_array_equal(one.b, two.b)
    np.testing.assert_array_equal(one.b_heldout, two.b_heldout)
    np.testing.assert_array_equal(one.labels, two.labels)
    idx = np.arange(SMALL.prompts, dtype=np.int64)
    for _ in range(3):
        k1, k2 = one.rollout(idx), two.rollout(idx)
        np.testing.assert_array_equal(k1, k2)
        one.learn(idx[:16], k1[:16])
        two.learn(idx[:16], k2[:16])
    assert one.theta == two.theta
    assert one.accuracy() == two.accuracy()


def test_a_different_seed_gives_a_different_world_and_rollouts() -> None:
    one, two = Twin(SMALL, seed=11), Twin(SMALL, seed=12)
    assert not np.array_equal(one.b, two.b)
    assert not np.array_equal(one.b_heldout, two.b_heldout)
    assert not np.array_equal(one.labels, two.labels)
    idx = np.flatnonzero(np.isfinite(one.b) & np.isfinite(two.b)).astype(np.int64)
    assert not np.array_equal(one.rollout(idx), two.rollout(idx))


def test_the_world_has_the_stated_mixture() -> None:
    p = TwinParams()  # full size: shares are read to within a couple of points
    twin = Twin(p, seed=0)
    assert twin.b.shape == (p.prompts,)
    assert twin.b_heldout.shape == (p.heldout,)
    assert np.mean(twin.tail) == pytest.approx(p.unsolvable, abs=0.015)
    assert np.mean(twin.b == -np.inf) == pytest.approx(p.solved, abs=0.015)
    assert not np.any(twin.tail & (twin.b == -np.inf))
    ordinary = twin.b[np.isfinite(twin.b) & ~twin.tail]
    assert np.std(ordinary) == pytest.approx(p.spread, rel=0.05)
    assert np.mean(ordinary) == pytest.approx(0.0, abs=0.1)
    # the hard tail: Normal(hard, spread)
    assert np.mean(twin.b[twin.tail]) == pytest.approx(p.hard, abs=0.15)
    assert np.std(twin.b[twin.tail]) == pytest.approx(p.spread, rel=0.07)
    held = twin.b_heldout[np.isfinite(twin.b_heldout) & ~twin.tail_heldout]
    assert np.mean(held) == pytest.approx(p.heldout_shift, abs=0.15)
    assert np.mean(twin.tail_heldout) == pytest.approx(p.unsolvable, abs=0.025)
    assert twin.theta == p.ability
    assert np.all(twin.u == 0.0)


def test_labels_are_levels_one_to_five_and_track_difficulty() -> None:
    twin = Twin(TwinParams().with_(hard=1e6), seed=0)
    assert twin.labels.dtype == np.int64
    assert set(np.unique(twin.labels).tolist()) == set(range(1, LEVELS + 1))
    # quintiles: each level holds a fifth of the prompts
    counts = np.bincount(twin.labels, minlength=LEVELS + 1)[1:]
    assert np.all(np.abs(counts - twin.params.prompts / LEVELS) <= 1)
    finite = np.isfinite(twin.b) & ~twin.tail
    correlation = np.corrcoef(twin.labels[finite], twin.b[finite])[0, 1]
    assert correlation > 0.6
    # harder levels hold harder prompts, on average
    means = [float(np.mean(twin.b[finite & (twin.labels == lvl)])) for lvl in range(1, 5)]
    assert means == sorted(means)
    # unsolvable prompts sit mostly in the hardest levels, solved ones in the easiest
    assert np.mean(twin.labels[twin.tail] >= 4) > 0.9
    assert np.mean(twin.labels[twin.b == -np.inf] <= 2) > 0.9
    # the label noise reaches them too: unsolvable prompts do not all share one level, and the
    # hardest level holds some hard but solvable prompts (as MATH's level 5)
    assert len(np.unique(twin.labels[twin.tail])) >= 2
    assert np.any(finite[twin.labels == LEVELS])


def test_labels_are_imperfect() -> None:
    twin = Twin(TwinParams().with_(hard=1e6), seed=0)
    finite = np.isfinite(twin.b) & ~twin.tail
    b, labels = twin.b[finite], twin.labels[finite]
    # some prompt is labelled easier than a prompt that is in fact easier
    order = np.argsort(b)
    assert np.any(np.diff(labels[order]) < 0)
    # without noise the finite prompts' labels are monotone in b
    exact = Twin(TwinParams().with_(hard=1e6, label_noise=0.0), seed=0)
    order = np.argsort(exact.b[finite])
    assert np.all(np.diff(exact.labels[finite][order]) >= 0)


def test_accuracy_is_the_mean_sigmoid_over_the_heldout_prompts() -> None:
    twin = Twin(SMALL, seed=8)
    assert twin.accuracy() == pytest.approx(float(np.mean(expit(twin.theta - twin.b_heldout))))
    before = twin.accuracy()
    idx = _finite_prompts(twin, SMALL.batch)
    twin.learn(idx, np.full(idx.size, 4, dtype=np.int64))
    expected = float(np.mean(expit(twin.theta - twin.b_heldout)))
    assert twin.accuracy() == pytest.approx(expected, rel=1e-12)
    assert twin.accuracy() > before
    # u never reaches the held-out set: a huge prompt-specific skill leaves accuracy alone
    twin.u[:] = 100.0
    assert twin.accuracy() == pytest.approx(expected, rel=1e-12)
    # the held-out unsolvable prompts cap the accuracy (an ability far past every ordinary
    # prompt, and still 1e6 short of the tail)
    twin.theta = 1e5
    assert twin.accuracy() == pytest.approx(float(np.mean(~twin.tail_heldout)))


def test_cost_units_count_right_answers_once_and_wrong_ones_at_wrong_length() -> None:
    twin = Twin(SMALL, seed=9)
    k = _idx(0, 3, 8)
    right, wrong = 11, 3 * 8 - 11
    assert twin.cost_units(k) == pytest.approx(right + SMALL.wrong_length * wrong)
    assert twin.cost_units(k) == pytest.approx(43.5)
    assert twin.cost_units(_idx()) == 0.0
    other = Twin(SMALL.with_(wrong_length=1.0), seed=9)
    assert other.cost_units(k) == pytest.approx(24.0)


def test_with_makes_a_copy_and_rejects_unknown_names() -> None:
    p = TwinParams()
    q = p.with_(spread=3.0, batch=64)
    assert (q.spread, q.batch) == (3.0, 64)
    assert p.spread == 2.0
    assert p.batch == 1024
    with pytest.raises(ValueError, match="'no_such_param'"):
        p.with_(no_such_param=1.0)
    with pytest.raises(ValueError, match="'sprad'"):
        p.with_(spread=1.0, sprad=1.0)
    assert q.to_dict()["spread"] == 3.0
    assert set(q.to_dict()) == {f.name for f in fields(TwinParams)}


def test_describe_params_explains_every_field() -> None:
    described = describe_params()
    defaults = TwinParams()
    assert [name for name, _, _ in described] == [f.name for f in fields(TwinParams)]
    for name, value, doc in described:
        assert value == getattr(defaults, name)
        assert doc.strip(), f"{name} has no explanation"
    fitted = {name for name, _, doc in described if doc.startswith("fitted")}
    # the fit's free parameters, plus the GPU-hour scale it sets afterwards
    assert fitted == {*FREE, "gpu_hours_per_unit"}


def test_a_finite_hard_tail_is_learned_only_where_it_is_trained_on() -> None:
    """``hard`` finite: a tail prompt starts (almost) never solved; once the model's ability comes
    near it, the groups it is trained in carry signal and its skill u grows until it is solved,
    while the tail prompts never trained on stay where transfer alone puts them."""
    params = SMALL.with_(hard=3.0, specific=0.5)
    twin = Twin(params, seed=6)
    tail = np.flatnonzero(twin.tail).astype(np.int64)
    trained, untouched = tail[:10], tail[10:]
    assert float(np.mean(twin.pass_probability(tail))) < 0.1
    twin.theta = 2.5  # near the tail, as transfer brings it
    for _ in range(40):
        twin.learn(trained, twin.rollout(trained))
    solved = twin.pass_probability(trained)
    others = twin.pass_probability(untouched)
    assert float(np.mean(solved)) > 0.9
    assert float(np.mean(others)) < 0.75
    assert np.all(twin.u[untouched] == 0.0)


def test_the_tail_at_1e6_is_the_twin_as_it_was() -> None:
    """``hard`` 1e6 draws the same world as before the tail became finite: the same ordinary
    prompts, and a tail whose pass probability is exactly 0 (b was +inf)."""
    endless, finite = Twin(SMALL, seed=7), Twin(SMALL.with_(hard=2.0), seed=7)
    np.testing.assert_array_equal(endless.tail, finite.tail)
    ordinary = ~endless.tail
    np.testing.assert_array_equal(endless.b[ordinary], finite.b[ordinary])
    np.testing.assert_allclose(
        endless.b[endless.tail] - 1e6, finite.b[finite.tail] - 2.0, atol=1e-6
    )
    assert np.all(endless.pass_probability(np.flatnonzero(endless.tail)) == 0.0)
