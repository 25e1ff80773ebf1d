"""The map between client prompt ids (strings) and dense prompt indexes 0..N-1.

Two layouts keep memory per prompt small at N in the millions:

* implicit: while the ids registered are exactly "0", "1", ..., "k-1" in that order (the dataset row
  index as text, the usual case and what ``{"count": N}`` registers), nothing per prompt is stored.
* explicit: any other id goes to a compact table: its UTF-8 bytes in one buffer with an offset
  array, and an index sorted by Python's string hash for lookups (about len(id) + 24 bytes per
  id, against ~150 for a dict of str objects). Hash collisions are resolved by comparing the
  stored bytes.

Explicit ids get the indexes after the implicit range. Lookups of a batch of B ids cost O(B log N).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from cdas.core.errors import InvalidArgumentError
from cdas.core.validate import check_prompt_id, describe

IndexArray = npt.NDArray[np.int64]


def canonical_int(prompt_id: str) -> int:
    """The integer an id spells in canonical decimal ("0", "17"; not "017", "+1", " 1"), or -1."""
    if (
        len(prompt_id) <= 18
        and prompt_id.isascii()
        and prompt_id.isdigit()
        and (len(prompt_id) == 1 or prompt_id[0] != "0")
    ):
        return int(prompt_id)
    return -1


def canonical_ints(ids: Sequence[str]) -> IndexArray:
    """``canonical_int`` of every id, vectorized (it runs for every id of every call)."""
    return np.fromiter(
        (
            int(s)
            if len(s) <= 18 and s.isascii() and s.isdigit() and (len(s) == 1 or s[0] != "0")
            else -1
            for s in ids
        ),
        dtype=np.int64,
        count=len(ids),
    )


def implicit_prefix(ids: Sequence[str], implicit: int) -> int:
    """How many leading ``ids`` continue the implicit range "0".."implicit-1" (the rule every id
    table follows while it holds no explicit id)."""
    k = 0
    while k < len(ids) and canonical_int(ids[k]) == implicit + k:
        k += 1
    return k


def check_new(
    lookup: Callable[[Sequence[str]], IndexArray], ids: Sequence[str], field: str
) -> None:
    """Validate ids for registration in a table with this ``lookup``: strings of 1-256 bytes, no
    duplicates among them or with the registered ones. Raises ``InvalidArgumentError`` naming
    the first bad id; O(m log m)."""
    PromptIds.check_names(ids, field)
    known = lookup(ids)
    if (known >= 0).any():
        first = ids[int(np.flatnonzero(known >= 0)[0])]
        raise InvalidArgumentError(
            f"prompt id {describe(first)} is already registered", field=field, value=first
        )


class PromptIds:
    """Bidirectional id <-> index map; see the module docstring for the layout."""

    def __init__(self) -> None:
        self._implicit = 0
        self._buf = bytearray()
        self._off = np.zeros(1, dtype=np.int64)  # explicit id j is _buf[_off[j]:_off[j+1]]
        self._explicit = 0
        self._hash = np.zeros(0, dtype=np.int64)  # sorted hashes of explicit ids
        self._hpos = np.zeros(0, dtype=np.int64)  # explicit position of each sorted hash

    def __len__(self) -> int:
        return self._implicit + self._explicit

    @property
    def implicit(self) -> int:
        """How many leading ids are the implicit "0".."k-1"."""
        return self._implicit

    @property
    def explicit(self) -> int:
        """How many ids are held in the explicit table."""
        return self._explicit

    # ------------------------------------------------------------------ registration
    def check_new(self, ids: Sequence[str], field: str = "ids") -> None:
        check_new(self.lookup, ids, field)

    @staticmethod
    def check_names(ids: Sequence[str], field: str = "ids") -> None:
        """Each id a string of 1-256 bytes, none twice among ``ids``."""
        for pos, prompt_id in enumerate(ids):
            check_prompt_id(prompt_id, f"{field}[{pos}]")
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            for prompt_id in ids:
                if prompt_id in seen:
                    raise InvalidArgumentError(
                        f"prompt id {describe(prompt_id)} appears twice in {field}",
                        field=field,
                        value=prompt_id,
                    )
                seen.add(prompt_id)

    def add(self, ids: Sequence[str]) -> None:
        """Register ids (checked with ``check_new``) at indexes len(self), len(self) + 1, ..."""
        start = 0
        if self._explicit == 0:  # still purely implicit: extend the implicit range while we can
            start = implicit_prefix(ids, self._implicit)
            self._implicit += start
        if start < len(ids):
            self.add_explicit(ids[start:])

    def add_explicit(self, rest: Sequence[str]) -> None:
        base = self._explicit
        ends = np.empty(len(rest), dtype=np.int64)
        for k, prompt_id in enumerate(rest):
            self._buf += prompt_id.encode("utf-8", "surrogatepass")
            ends[k] = len(self._buf)
        self._off = np.concatenate([self._off[: base + 1], ends])
        self._explicit += len(rest)
        hashes = np.fromiter((hash(s) for s in rest), dtype=np.int64, count=len(rest))
        order = np.argsort(hashes, kind="stable")
        new_h, new_p = hashes[order], order.astype(np.int64) + base
        where = np.searchsorted(self._hash, new_h)
        self._hash = np.insert(self._hash, where, new_h)
        self._hpos = np.insert(self._hpos, where, new_p)

    def add_count(self, count: int) -> None:
        """Extend the implicit range by ``count`` ids (only while there are no explicit ids)."""
        if self._explicit:
            raise ValueError("implicit ids cannot follow explicit ones; register them by name")
        self._implicit += count

    # ------------------------------------------------------------------ lookups
    def _explicit_id(self, j: int) -> str:
        start, end = int(self._off[j]), int(self._off[j + 1])
        return self._buf[start:end].decode("utf-8", "surrogatepass")

    def lookup(self, ids: Sequence[str], canonical: IndexArray | None = None) -> IndexArray:
        """Indexes of ``ids``; -1 where an id is not registered. O(m log N).
        ``canonical``: ``canonical_ints(ids)`` when the caller has it already."""
        out = canonical_ints(ids) if canonical is None else canonical.copy()
        out[out >= self._implicit] = -1
        if self._hash.size == 0:
            return out
        todo = np.flatnonzero(out < 0)
        if todo.size == 0:
            return out
        hashes = np.fromiter((hash(ids[k]) for k in todo.tolist()), dtype=np.int64, count=todo.size)
        lo = np.searchsorted(self._hash, hashes, side="left")
        hit = lo < self._hash.size
        hit[hit] = self._hash[lo[hit]] == hashes[hit]
        for k, start, found in zip(todo.tolist(), lo.tolist(), hit.tolist(), strict=True):
            if not found:
                continue
            j = start  # every explicit id with this hash, usually exactly one
            while j < self._hash.size and self._hash[j] == self._hash[start]:
                pos = int(self._hpos[j])
                if self._explicit_id(pos) == ids[k]:
                    out[k] = self._implicit + pos
                    break
                j += 1
        return out

    def ids(self, idx: npt.NDArray[np.integer]) -> list[str]:
        """The ids of indexes ``idx`` (all < len(self)), in order. O(m)."""
        values = idx.tolist()
        if not self._hash.size:
            return list(map(str, values))
        k = self._implicit
        return [str(i) if i < k else self._explicit_id(i - k) for i in values]

    # ------------------------------------------------------------------ snapshot
    def load(self, other: PromptIds) -> None:
        """Become a copy of ``other`` (a restore)."""
        self.__dict__.update(
            {k: (v.copy() if hasattr(v, "copy") else v) for k, v in other.__dict__.items()}
        )

    def to_arrays(self) -> tuple[int, npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """(implicit count, id bytes, offsets): everything needed to rebuild the map."""
        return (
            self._implicit,
            np.frombuffer(bytes(self._buf), dtype=np.uint8).copy(),
            self._off.copy(),
        )

    @classmethod
    def from_arrays(
        cls, implicit: int, buf: npt.NDArray[np.uint8], off: npt.NDArray[np.int64]
    ) -> PromptIds:
        out = cls()
        out._implicit = int(implicit)
        data = buf.tobytes()
        offsets = off.tolist()
        if len(offsets) > 1:
            out.add_explicit(
                [
                    data[offsets[j] : offsets[j + 1]].decode("utf-8", "surrogatepass")
                    for j in range(len(offsets) - 1)
                ]
            )
        return out
