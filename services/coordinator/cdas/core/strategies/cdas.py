"""CDAS: Competence-Difficulty Alignment Sampling (Kong et al., AAAI 2026), per ``shared/CDAS.md``.

Selection at step n uses C_{n-1} and D: with A(x) = |C - D(x)|, take the floor(B/2) prompts with
D <= C nearest C (largest D first) and the ceil(B/2) with D > C nearest C (smallest D first); a side
that runs short is made up from the other, next nearest first. Ties in D are broken by a fresh
random key drawn at every update (uniform, reproducible from the seed).

Warm-up (``warmup``, default true): while never-sampled prompts remain, a batch is drawn uniformly
from them; the epoch's last partial batch is topped up by the selection above. A prompt counts as
sampled once it was issued in a batch or once results for it arrived (then it has a difficulty,
which is what the warm-up is for: results posted for every prompt before the first batch, say from
an earlier run, end the warm-up).

Cost per step: O(B log N + B * cap) with the ordered index; the warm-up pool draws in O(B).

Two variants the paper's analysis invites, as params whose defaults are the paper exactly (same
batches, same state; a default run's snapshot holds no new arrays, only the params' defaults):

Retirement (``retire_after`` k, default 0 = off; ``retest_share`` rho, default 0.05). Why: the
paper's Fig. 5 shows CDAS's share of zero-gradient groups (pass rate 0 or 1) rising late, from 0.08
at step 30 to 0.30 at step 110, and diagnoses it: prompts the policy cannot solve drift into B+
next to C (an unsolvable prompt's D settles where D = sigmoid(C - D): above C, and closer to it as
C grows, equal at C = 0.5), and CDAS keeps picking them, each time for a group that teaches
nothing.

* ``streak(x)``: the number of x's latest results in a row with pass rate exactly 0 or exactly 1
  (zero-gradient in the paper's sense; a group of rewards that all exceed the threshold counts as
  pass rate 1 even when the rewards differ). Any other result sets it to 0.
* When ``streak(x)`` reaches k, x is retired: taken out of the ordered index, so the alignment
  selection never picks it. Its D and t still follow every result that arrives for it.
* Retests, the way back: each batch that holds no warm-up draw takes
  ``r = min(round(rho * B), R)`` of its B prompts uniformly at random without replacement from the
  R retired prompts not yet issued in the step (``round`` is Python's, half to even), from the
  request's random stream, so the draw is reproducible like the warm-up's; the other B - r are the
  alignment selection. Warm-up draws are exactly the paper's (retirement during the warm-up
  happens; retests start with the first batch without warm-up draws). Should fewer prompts
  than B - r be left in the index (nearly everything retired), more retired prompts fill the batch.
* A retired prompt whose result (a retest's, or any other) is not zero-gradient gets streak 0 and
  goes back into the index under its current key (D, tie key of its latest update).

The streaks (a float array, exact below 2**53) and the retired set (a uniform pool with removal)
live in the run's space, so both stores hold them and snapshots carry them (only when k > 0).
Cost: O(m) per m results (streaks, membership, O(1) swaps per retirement or return), O(r + the
step's earlier prompts) per retest draw, O(1) for the retired count; memory with k > 0: 8 bytes
per prompt for the streaks, 4 per prompt of pool positions and 4 per retired prompt.

Faster difficulty (``min_weight`` w0, default 0 = the paper's running mean): the update is
``D <- D + w (d - D)`` with ``w = max(1/t, w0)`` (``cdas.core.difficulty.updated_difficulty``), an
exponential moving average once t > 1/w0. Why: a running mean over t updates moves by only 1/t
of a change in the policy, so a prompt the policy has learned keeps its old, hard D for
a long time and sits away from where CDAS looks; with w0 the difficulty forgets at rate w0 and
follows the policy. C = -mean D stays exact (the engine's fixed-point sum takes any new D).

Mixing (``mix_share`` mu, default 0 = off). Why: on a small policy (``cdas grpo``, docs/grpo.md)
CDAS stops drawing the prompts far below the competence, which the policy had mastered, and the
policy forgets them; Random keeps drawing every kind. Each batch that holds no warm-up draw takes
``m = min(round(mu * B), free)`` of its prompts uniformly at random without replacement from every
prompt not yet issued in the step (``free`` of them), from the request's random stream; retests and
the alignment selection fill the rest. No state: rejection sampling of uniform indexes, expected
O(m + the step's earlier prompts) while at most half the prompts are excluded, else O(N).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cdas.core.arrays import unique_sorted
from cdas.core.params import Param, boolean, integer, number
from cdas.core.randomness import tie_keys
from cdas.core.strategies.base import (
    Arrays,
    FloatArray,
    IntArray,
    Request,
    Strategy,
    Update,
    register,
)
from cdas.core.structures.ordered import ComplexArray

if TYPE_CHECKING:
    from cdas.core.engine import RunView
    from cdas.core.space import FloatArrayLike, PoolLike, RunSpace

MAX_RETIRE_AFTER = 1_000_000
"""The largest ``retire_after`` (a bound for the schema; any practical run stays far below)."""


def _uniform_excluding(n: int, k: int, exclude: IntArray, rng: np.random.Generator) -> IntArray:
    """Up to ``k`` distinct prompts drawn uniformly without replacement from 0..n-1 minus
    ``exclude`` (fewer when fewer are left), in draw order. Rejection sampling (first-seen uniform
    indexes that are allowed: a uniform ordered sample) while at most half are excluded, expected
    O(k + |exclude|); else a draw from the explicit complement, O(n)."""
    banned = unique_sorted(exclude)
    free = n - banned.size
    k = min(k, free)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if 2 * banned.size > n:
        allowed = np.setdiff1d(np.arange(n, dtype=np.int64), banned, assume_unique=True)
        out: IntArray = rng.choice(allowed, size=k, replace=False)
        return out.astype(np.int64)
    chosen: list[int] = []
    seen = set(banned.tolist())
    while len(chosen) < k:
        for x in rng.integers(0, n, size=2 * (k - len(chosen))).tolist():
            if x not in seen:
                seen.add(x)
                chosen.append(x)
                if len(chosen) == k:
                    break
    return np.asarray(chosen, dtype=np.int64)


@register
class Cdas(Strategy):
    name = "cdas"
    params = (
        Param(
            "warmup",
            True,
            boolean,
            "first epoch uniformly at random without replacement, so every prompt has a difficulty "
            "before alignment-based selection starts",
        ),
        Param(
            "retire_after",
            0,
            integer(0, MAX_RETIRE_AFTER),
            "a prompt whose latest retire_after results in a row had pass rate 0 or 1 leaves the "
            "alignment selection until a retest shows another pass rate; 0: never (the paper)",
        ),
        Param(
            "retest_share",
            0.05,
            number(0.0, 1.0),
            "with retire_after > 0: round(retest_share * size) prompts of each batch after the "
            "warm-up are drawn uniformly from the retired ones",
        ),
        Param(
            "min_weight",
            0.0,
            number(0.0, 1.0),
            "floor of a difficulty update's weight, D <- D + max(1/t, min_weight) (d - D); "
            "0: the paper's running mean",
        ),
        Param(
            "mix_share",
            0.0,
            number(0.0, 1.0),
            "round(mix_share * size) prompts of each batch after the warm-up drawn uniformly from "
            "every prompt (replay, against forgetting); 0: none (the paper)",
        ),
    )

    def __init__(self, params: dict[str, Any], seed: int, space: RunSpace) -> None:
        super().__init__(params, seed, space)
        self.index = space.ordered_index("cdas")
        self.pool = space.pool("warmup") if params["warmup"] else None
        self.min_weight = float(params["min_weight"])
        self.retire_after = int(params["retire_after"])
        self.retest_share = float(params["retest_share"])
        self.mix_share = float(params["mix_share"])
        self.streak: FloatArrayLike | None = None
        self.retired: PoolLike | None = None
        if self.retire_after > 0:
            self.streak = space.float_array("streak")
            self.retired = space.pool("retired")

    def keys(self, d: np.ndarray, idx: IntArray, t: np.ndarray) -> ComplexArray:
        """Index keys: difficulty, ties broken by the update's random key."""
        keys: ComplexArray = d + 1j * tie_keys(self.seed, idx, t)
        return keys

    def retired_count(self) -> int:
        return 0 if self.retired is None else self.retired.size

    def add(self, view: RunView, start: int, stop: int, labels: FloatArray | None) -> None:
        idx = np.arange(start, stop, dtype=np.int64)
        zero = np.zeros(idx.size)
        self.index.insert(idx, self.keys(zero, idx, zero.astype(np.int32)))
        if self.pool is not None:
            self.pool.add(idx)
        if self.streak is not None:
            self.streak.append(zero)

    def select(self, view: RunView, request: Request) -> IntArray:
        warm = np.zeros(0, dtype=np.int64)
        if self.pool is not None and self.pool.live:
            warm = self.pool.draw(request.size, request.rng, exclude=request.exclude)
            self._end_warmup()
        rest = request.size - warm.size
        if rest == 0:
            return warm
        exclude = request.exclude if warm.size == 0 else np.concatenate([request.exclude, warm])
        if self.mix_share > 0 and warm.size == 0:
            mixed = _uniform_excluding(
                view.n, min(round(self.mix_share * request.size), rest), exclude, request.rng
            )
            if mixed.size:
                rest -= mixed.size
                warm = mixed
                exclude = np.concatenate([exclude, mixed])
                if rest == 0:
                    return warm
        if self.retired is not None:
            retests = self._retests(view, request, rest, exclude, warm.size == 0)
            rest -= retests.size
            warm = np.concatenate([warm, retests])
            if rest == 0:
                return warm
        near = self.index.nearest(view.competence, rest // 2, rest - rest // 2, exclude)
        return np.concatenate([warm, near])

    def _retests(
        self, view: RunView, request: Request, rest: int, exclude: IntArray, scheduled: bool
    ) -> IntArray:
        """The retired prompts of a batch: round(rho * B) of them when ``scheduled`` (no warm-up
        draw in the batch), more when the index cannot supply the other ``rest`` prompts;
        uniform without replacement over the retired prompts not in ``exclude``. O(r + |ex|)."""
        retired = self.retired
        assert retired is not None
        if retired.size == 0:
            return np.zeros(0, dtype=np.int64)
        free = retired.available(exclude)  # retired, not issued in this step
        excluded_active = unique_sorted(exclude).size - (retired.size - free)
        active = view.n - retired.size - excluded_active  # what the index can still supply
        wanted = round(self.retest_share * request.size) if scheduled else 0
        k = min(max(wanted, rest - active), free, rest)
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        out = retired.draw(k, request.rng, exclude=exclude)
        retired.reset()  # every retired prompt stays drawable at the next batch
        return out

    def observe(self, view: RunView, update: Update) -> None:
        idx = update.idx
        if self.pool is not None and self.pool.live:
            self.pool.discard(idx)
            self._end_warmup()
        old_keys = self.keys(update.old_d, idx, update.old_t)
        new_keys = self.keys(update.new_d, idx, update.new_t)
        if self.retired is None or self.streak is None:
            self.index.update(idx, old_keys, idx, new_keys)
            return
        extreme = (update.pass_rate == 0.0) | (update.pass_rate == 1.0)
        streak = np.where(extreme, self.streak.get(idx) + 1.0, 0.0)
        self.streak.set(idx, streak)
        was = self.retired.contains(idx)
        now = np.where(was, extreme, streak >= self.retire_after)
        stays, back = ~was, ~now  # in the index before / after
        self.index.update(idx[stays], old_keys[stays], idx[back], new_keys[back])
        self.retired.remove(idx[was & back])
        self.retired.add(idx[now & stays])

    def _end_warmup(self) -> None:
        """Once every prompt is sampled, the warm-up pool's arrays are dead weight: free them."""
        if self.pool is not None and self.pool.live == 0 and self.pool.size:
            self.pool.clear()

    def dump(self) -> Arrays:
        out: Arrays = (
            {}
            if self.pool is None
            else {f"warmup_{k}": v for k, v in self.pool.to_arrays().items()}
        )
        if self.retired is not None and self.streak is not None:
            out["streak"] = self.streak.dump()
            out.update({f"retired_{k}": v for k, v in self.retired.to_arrays().items()})
        return out

    def load(self, view: RunView, core: Arrays, own: Arrays) -> None:
        idx = np.arange(view.n, dtype=np.int64)
        if self.retired is not None and self.streak is not None:
            self.streak.append(np.asarray(own["streak"], dtype=np.float64))
            items = np.asarray(own["retired_items"], dtype=np.int64)
            self.retired.load({"items": items, "counters": own["retired_counters"]})
            active = np.ones(view.n, dtype=np.bool_)
            active[items] = False
            idx = idx[active]
        self.index.insert(idx, self.keys(core["d"][idx], idx, core["t"][idx]))
        if self.pool is not None:
            self.pool.load({"items": own["warmup_items"], "counters": own["warmup_counters"]})
