"""The arms an experiment compares: every strategy under its own name, and named CDAS variants.

A variant is the ``cdas`` strategy with parameters other than the paper's (issue 16; the
parameters are documented in ``cdas.core.strategies.cdas``). Their values were fixed here
before each variant first ran, from the settings' scale alone (the first three on 2026-12-05):

- ``cdas-retire``: ``retire_after`` 3. A prompt leaves selection after three zero-gradient
  results in a row, the fewest that tells "stuck at 0 or 1" from bad luck: a prompt with pass
  probability 0.2 gives 8 wrong answers in a row with probability 0.17, three such groups in a row
  with 0.005. In the paper's setting (N = 12,000, B = 1024, 110 steps) a prompt is sampled about
  9 times, in ``cdas grpo``'s about 8, so three leaves room to be retired and retested.
  ``retest_share`` stays at its default, 0.05.
- ``cdas-fast``: ``min_weight`` 0.25. D follows a moving average over about the last four
  results instead of the mean of all of them; at 8-9 samplings a prompt's 1/t falls below 0.25
  after its fourth result, so the floor binds for the second half of a run, when the policy has
  learned what the early results measured.
- ``cdas-retire-fast``: both.
- ``cdas-mix``: ``mix_share`` 0.25, added the same night, after the three above had run in
  ``cdas grpo`` and lost to Random there, to test the diagnosis written before them (CDAS's
  policy forgets the mastered prompts it no longer draws): a quarter of each batch uniform over
  every prompt, so each prompt is still drawn at a quarter of Random's rate and three quarters of
  the batch stay aligned. 0.25 is that round split, chosen before any mixed run and not varied.

An experiment's run ids and records carry the arm's label; the coordinator sees the strategy and
its parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdas.core.strategies import REGISTRY

VARIANTS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "cdas-retire": ("cdas", {"retire_after": 3}),
    "cdas-fast": ("cdas", {"min_weight": 0.25}),
    "cdas-retire-fast": ("cdas", {"retire_after": 3, "min_weight": 0.25}),
    "cdas-mix": ("cdas", {"mix_share": 0.25}),
}


def known() -> list[str]:
    """Every arm's label: the strategies, then the variants."""
    return [*sorted(REGISTRY), *VARIANTS]


def resolve(label: str) -> tuple[str, dict[str, Any]]:
    """The strategy and the parameters of the arm ``label``; a ``ValueError`` naming it and the
    known labels when there is no such arm."""
    if label in VARIANTS:
        strategy, params = VARIANTS[label]
        return strategy, dict(params)
    if label in REGISTRY:
        return label, {}
    raise ValueError(f"strategy {label!r} does not exist; known: {', '.join(known())}")
