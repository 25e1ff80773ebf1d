"""The id map: implicit "0".."k-1" ranges, the compact explicit table, hash collisions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cdas.core.ids import PromptIds


class Colliding(str):
    """A string whose hash collides with every other Colliding string."""

    def __hash__(self) -> int:
        return 42


def test_implicit_then_explicit() -> None:
    ids = PromptIds()
    ids.add_count(5)
    ids.add(["5", "6", "x", "8", "07"])
    assert ids.implicit == 7
    assert len(ids) == 10
    assert ids.lookup(["0", "6", "x", "8", "07", "7", "9", "-1", "00", "1" * 30]).tolist() == [
        0,
        6,
        7,
        8,
        9,
        -1,
        -1,
        -1,
        -1,
        -1,
    ]
    assert ids.ids(np.arange(10)) == ["0", "1", "2", "3", "4", "5", "6", "x", "8", "07"]


def test_hash_collisions_are_resolved_by_the_stored_bytes() -> None:
    ids = PromptIds()
    names = [Colliding(s) for s in ("alpha", "beta", "gamma")]
    ids.add(names)
    assert ids.lookup([Colliding("gamma"), Colliding("beta"), Colliding("delta")]).tolist() == [
        2,
        1,
        -1,
    ]


@settings(max_examples=100, deadline=None)
@given(chunks=st.lists(st.lists(st.text(min_size=1, max_size=12), max_size=30), max_size=6))
def test_round_trip_against_a_dict(chunks: list[list[str]]) -> None:
    ids = PromptIds()
    model: dict[str, int] = {}
    for chunk in chunks:
        fresh = [s for s in dict.fromkeys(chunk) if s not in model]
        ids.add(fresh)
        for s in fresh:
            model[s] = len(model)
    names = list(model)
    assert ids.lookup(names).tolist() == list(range(len(names)))
    assert ids.ids(np.arange(len(names))) == names
    copy = PromptIds.from_arrays(*ids.to_arrays())
    assert copy.lookup(names).tolist() == list(range(len(names)))
    assert copy.ids(np.arange(len(names))) == names
