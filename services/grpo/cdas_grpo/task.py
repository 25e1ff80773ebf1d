"""The task family: integer sums whose difficulty is set by the operands' digits and count.

A problem is ``"a+b="`` or ``"a+b+c="`` with operands of ``digits`` digits each (the leading digit
never 0, except for one-digit operands), and its answer is the sum. Every number is written least
significant digit first (``"21+543="`` is 12 + 345, answered ``"753"``), the layout in which a
transformer can add digit by digit, carrying forward as it writes; most significant first, a model
this small learns too slowly for a laptop. A rollout is right when the text it generates before
its end token equals the answer exactly: exact checking, no grader to trust.

Why sums: difficulty grows smoothly and without a ceiling with the number of digits and operands
(every extra digit is one more carry to get right, written most significant digit first, so the
model must look ahead), a tiny transformer learns the short ones in seconds and the long ones not
at all, and the held-out set can be drawn from exactly the training set's distribution. The
*rungs* (operands, digits) are the difficulty levels; the training set, the held-out set and the
warm start's supervised data are drawn from the same mix of rungs, disjointly.

Tokens are characters: ``0``..``9``, ``+``, ``=``, plus ``<pad>``, ``<bos>`` and ``<eos>``. A
prompt is ``<bos>`` and its characters; an answer is its digits and ``<eos>``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

PAD, BOS, EOS = 0, 1, 2
CHARS = "0123456789+="
DIGIT0 = 3
"""The token of ``0``; ``1``..``9`` follow it."""
VOCAB = 3 + len(CHARS)
_CODE = {c: i + 3 for i, c in enumerate(CHARS)}


@dataclass(frozen=True, slots=True)
class Rung:
    """A difficulty level: ``operands`` numbers of ``digits`` digits each."""

    operands: int
    digits: int

    @property
    def name(self) -> str:
        return f"{self.operands}x{self.digits}"

    def answer_length(self) -> int:
        """The most digits a sum of this rung can have."""
        return len(str(self.operands * (10**self.digits - 1)))


@dataclass(frozen=True, slots=True)
class Problem:
    """One prompt: its text (``"21+543="``), its answer (``"753"``) and its rung."""

    text: str
    answer: str
    rung: Rung


def parse_rungs(text: str) -> tuple[Rung, ...]:
    """``"2x1,2x2,3x1"`` -> rungs; a clear ``ValueError`` naming a bad one."""
    rungs = []
    for part in text.split(","):
        ops, _, digits = part.strip().partition("x")
        try:
            rung = Rung(int(ops), int(digits))
        except ValueError:
            raise ValueError(f"rung {part!r}: give OPERANDSxDIGITS, such as 2x3") from None
        if not (2 <= rung.operands <= 4 and 1 <= rung.digits <= 6):
            raise ValueError(f"rung {part!r}: operands must be 2-4 and digits 1-6")
        rungs.append(rung)
    if not rungs:
        raise ValueError(f"rungs {text!r}: name at least one")
    return tuple(rungs)


def parse_mix(text: str) -> tuple[tuple[Rung, ...], tuple[float, ...]]:
    """``"2x2:12,3x1:2"`` -> rungs and their weights (a rung without ``:W`` weighs 1)."""
    rungs: list[Rung] = []
    weights: list[float] = []
    for part in text.split(","):
        name, _, weight = part.partition(":")
        rungs += parse_rungs(name)
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"rung weight {part!r}: give RUNG:NUMBER, such as 3x1:2") from None
        if not value > 0:
            raise ValueError(f"rung weight {part!r}: the weight must be positive")
        weights.append(value)
    return tuple(rungs), tuple(weights)


def draw(rng: random.Random, rung: Rung) -> Problem:
    """A uniformly drawn problem of ``rung``."""
    low = 0 if rung.digits == 1 else 10 ** (rung.digits - 1)
    values = [rng.randrange(low, 10**rung.digits) for _ in range(rung.operands)]
    return Problem("+".join(str(v)[::-1] for v in values) + "=", str(sum(values))[::-1], rung)


def stream(
    rng: random.Random, rungs: Sequence[Rung], weights: Sequence[float], exclude: set[str]
) -> Iterator[Problem]:
    """Endless problems, rungs drawn by ``weights``, never one whose text is in ``exclude``."""
    while True:
        problem = draw(rng, rng.choices(rungs, weights)[0])
        if problem.text not in exclude:
            yield problem


def distinct(
    rng: random.Random, rungs: Sequence[Rung], count: int, exclude: set[str]
) -> list[Problem]:
    """``count`` distinct problems, the same number of each rung (in rung order, the remainder to
    the first rungs), none in ``exclude``. Raises when a rung has too few distinct problems."""
    out: list[Problem] = []
    seen = set(exclude)
    for position, rung in enumerate(rungs):
        want = count // len(rungs) + (1 if position < count % len(rungs) else 0)
        tries = 0
        got = 0
        while got < want:
            problem = draw(rng, rung)
            tries += 1
            if tries > 50 * want + 1000:
                raise ValueError(f"rung {rung.name} has too few distinct problems for {want}")
            if problem.text in seen:
                continue
            seen.add(problem.text)
            out.append(problem)
            got += 1
    return out


def encode_prompt(text: str) -> list[int]:
    return [BOS, *(_CODE[c] for c in text)]


def encode_answer(answer: str) -> list[int]:
    return [*(_CODE[c] for c in answer), EOS]


def decode(tokens: Sequence[int]) -> str:
    """The text of generated tokens up to (not including) the first ``<eos>``; ``None``-like
    empty string when nothing was generated. A ``<pad>``/``<bos>`` inside makes it unreadable,
    which exact checking counts as wrong (it never equals an answer)."""
    out = []
    for t in tokens:
        if t == EOS:
            break
        out.append(CHARS[t - 3] if t >= 3 else "?")
    return "".join(out)
