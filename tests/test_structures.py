"""The data structures behind the O(B log N) step, against plain models (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cdas.core.structures.ordered import OrderedIndex
from cdas.core.structures.pool import UniformPool
from cdas.core.structures.sumtree import SumTree

# keys: few distinct difficulties (many exact ties); tie keys are distinct random floats, as the
# 53-bit tie keys are (the order of two entries with identical keys is left unspecified)
difficulty = st.sampled_from([-0.5, -0.25, 0.0, 0.0, 0.125, 0.3]) | st.floats(-1, 1)


@settings(max_examples=150, deadline=None)
@given(
    initial=st.lists(difficulty, max_size=120),
    ops=st.lists(
        st.tuples(
            st.lists(st.integers(0, 400), max_size=40),  # prompts touched (update or insert)
            st.lists(difficulty, min_size=40, max_size=40),
            st.integers(0, 400),  # how many to remove
            difficulty,  # query center
            st.integers(0, 30),
            st.integers(0, 30),
            st.lists(st.integers(0, 400), max_size=10),  # excluded
        ),
        max_size=12,
    ),
    cap=st.sampled_from([8, 16, 64]),
    seed=st.integers(0, 2**32),
)
def test_ordered_index_matches_a_sorted_list(initial, ops, cap, seed) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    index = OrderedIndex(cap)
    model: dict[int, complex] = {}
    if initial:
        z = np.array(initial) + 1j * rng.random(len(initial))
        index.insert(np.arange(len(initial)), z)
        model = dict(enumerate(z.tolist()))
    index.check()
    for touched, keys, n_remove, center, below, above, excluded in ops:
        touched = list(dict.fromkeys(touched))
        rm = [x for x in touched if x in model]
        new = {x: complex(keys[i], rng.random()) for i, x in enumerate(touched)}
        victims = sorted(set(model) - set(touched))[:n_remove]
        rm_idx = np.array(rm + victims, dtype=np.int64)
        rm_z = np.array([model[x] for x in rm_idx.tolist()], dtype=np.complex128)
        in_idx = np.array(list(new), dtype=np.int64)
        in_z = np.array(list(new.values()), dtype=np.complex128)
        index.update(rm_idx, rm_z, in_idx, in_z)
        for x in victims:
            del model[x]
        model.update(new)
        index.check()
        assert len(index) == len(model)
        z_all, _idx_all = index.entries()
        assert sorted(model.values(), key=lambda v: (v.real, v.imag)) == z_all.tolist()
        # nearest: the `below` largest keys with real part <= center, then the smallest above
        ex = set(excluded)
        items = sorted(((v.real, v.imag, x) for x, v in model.items() if x not in ex))
        lo = [x for r, _, x in reversed(items) if r <= center]
        hi = [x for r, _, x in items if r > center]
        k_lo, k_hi = min(below, len(lo)), min(above, len(hi))
        k_hi = min(len(hi), above + below - k_lo)
        k_lo = min(len(lo), below + above - k_hi)
        got = index.nearest(center, below, above, np.array(excluded, dtype=np.int64))
        assert got.tolist() == lo[:k_lo] + hi[:k_hi]


def test_ordered_index_large_batches_and_emptying() -> None:
    rng = np.random.default_rng(0)
    index = OrderedIndex(16)
    n = 5000
    z = rng.integers(0, 50, n) / 50 + 1j * rng.random(n)
    index.insert(np.arange(n), z)
    for _ in range(50):
        pick = rng.choice(n, 300, replace=False)
        new = rng.integers(0, 50, 300) / 50 + 1j * rng.random(300)
        index.update(pick, z[pick], pick, new)
        z[pick] = new
        index.check()
    order = np.lexsort((z.imag, z.real))
    assert index.entries()[1].tolist() == order.tolist()
    index.update(np.arange(n), z, np.zeros(0, np.int64), np.zeros(0, np.complex128))
    index.check()
    assert len(index) == 0
    assert index.nearest(0.0, 3, 3).size == 0


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(0, 60),
    draws=st.lists(
        st.tuples(st.integers(0, 25), st.lists(st.integers(0, 70), max_size=8), st.booleans()),
        max_size=15,
    ),
    adds=st.integers(0, 20),
    seed=st.integers(0, 1000),
)
def test_uniform_pool_draws_live_members_without_repeats(size, draws, adds, seed) -> None:  # type: ignore[no-untyped-def]
    pool = UniformPool()
    pool.add(np.arange(size, dtype=np.int64))
    rng = np.random.default_rng(seed)
    drawn_this_epoch: set[int] = set()
    members = set(range(size))
    for k, excluded, epochs in draws:
        ex = np.array(excluded, dtype=np.int64)
        epoch = pool.epoch
        live_before = set(members) - drawn_this_epoch
        got = pool.draw(k, rng, exclude=ex, epochs=epochs).tolist()
        assert len(got) == len(set(got))
        assert not set(got) & set(excluded)
        assert set(got) <= members
        if pool.epoch == epoch:
            assert set(got) <= live_before
            assert len(got) == min(k, len(live_before - set(excluded)))
            drawn_this_epoch |= set(got)
        else:  # a new epoch began inside the draw
            assert epochs
            first = [x for x in got if x in live_before]
            assert set(first) == live_before - set(excluded)
            drawn_this_epoch = set(got) - set(first)
        assert pool.live == len(members) - len(drawn_this_epoch)
    pool.add(np.arange(size, size + adds, dtype=np.int64))
    members |= set(range(size, size + adds))
    rest = pool.draw(pool.live, rng).tolist()
    assert set(rest) == members - drawn_this_epoch


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(0, 40),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("draw"), st.integers(0, 8)),
            st.tuples(st.just("remove"), st.lists(st.integers(0, 60), max_size=10, unique=True)),
            st.tuples(st.just("add"), st.integers(0, 6)),
            st.tuples(st.just("reset"), st.just(0)),
        ),
        max_size=25,
    ),
    seed=st.integers(0, 1000),
)
def test_uniform_pool_removes_members_for_good(size, ops, seed) -> None:  # type: ignore[no-untyped-def]
    """``remove`` takes members out whether drawn in this epoch or not, ignores non-members and
    leaves every other member as it was; ``contains`` says who is in; a restore keeps it all."""
    pool = UniformPool()
    pool.add(np.arange(size, dtype=np.int64))
    rng = np.random.default_rng(seed)
    members, nxt = set(range(size)), size
    drawn: set[int] = set()
    for op, arg in ops:
        if op == "draw":
            got = pool.draw(arg, rng).tolist()
            assert set(got) <= members - drawn
            assert len(got) == min(arg, len(members - drawn))
            drawn |= set(got)
        elif op == "remove":
            pool.remove(np.array(arg, dtype=np.int64))
            members -= set(arg)
            drawn -= set(arg)
        elif op == "add":
            pool.add(np.arange(nxt, nxt + arg, dtype=np.int64))
            members |= set(range(nxt, nxt + arg))
            nxt += arg
        else:
            pool.reset()
            drawn = set()
        assert (pool.size, pool.live) == (len(members), len(members - drawn))
        every = np.arange(nxt + 5, dtype=np.int64)
        assert set(every[pool.contains(every)].tolist()) == members
    copy = UniformPool()
    copy.load(pool.to_arrays())
    assert (copy.size, copy.live) == (pool.size, pool.live)
    assert set(copy.draw(copy.live, rng).tolist()) == members - drawn


@settings(max_examples=100, deadline=None)
@given(
    weights=st.lists(
        st.sampled_from([0.0, 0.0, 0.5, 1.0]) | st.floats(0, 1), min_size=1, max_size=70
    ),
    k=st.integers(0, 80),
    excluded=st.lists(st.integers(0, 80), max_size=10),
    seed=st.integers(0, 1000),
)
def test_sum_tree_samples_distinct_positive_first_and_restores(weights, k, excluded, seed) -> None:  # type: ignore[no-untyped-def]
    w = np.array(weights)
    tree = SumTree()
    tree.grow(w.size, w)
    assert np.isclose(tree.total, w.sum())
    assert tree.positive == int((w > 0).sum())
    ex = np.array(excluded, dtype=np.int64)
    got = tree.sample(k, np.random.default_rng(seed), exclude=ex).tolist()
    allowed = [i for i in range(w.size) if i not in set(excluded)]
    assert len(got) == len(set(got)) == min(k, len(allowed))
    assert not set(got) & set(excluded)
    positive = [i for i in allowed if w[i] > 0]
    if len(got) <= len(positive):
        assert all(w[i] > 0 for i in got)
    else:
        assert set(positive) <= set(got)
    np.testing.assert_array_equal(tree.leaves(), w)  # weights restored
    fresh = SumTree()
    fresh.grow(w.size, w)
    nodes = np.arange(2 * tree.counters[1], dtype=np.int64)
    assert fresh.counters == tree.counters
    np.testing.assert_array_equal(fresh._nodes.get(nodes), tree._nodes.get(nodes))  # bit-identical
