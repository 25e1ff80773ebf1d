"""Counter-based randomness: every random choice is a pure function of the run's seed and of where
it is made, never of a hidden generator state.

Why: the same seed and the same results must give the same batches on every store, in every process,
whatever order concurrent writers applied a step's results in, and after a snapshot is restored.
Two sources serve that:

* ``tie_keys(seed, idx, t)``: a 53-bit key per (prompt, update count), drawn fresh at every
  update of the prompt. Ordering equal difficulties by this key breaks ties uniformly at random:
  the keys of a tie group are i.i.d. uniform and independent of the prompts' identities and of
  insertion order.
  A key is SplitMix64's finalizer applied to a mix of the three words (O(1) per prompt, vectorized).
* ``generator(seed, *words)``: a fresh PCG64 stream for one decision, e.g. the draw of step n,
  round r.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MAX_SEED = 2**63 - 1
"""Seeds are integers in [0, 2**63 - 1]."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_T = np.uint64(0xC2B2AE3D27D4EB4F)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV_2_53 = 2.0**-53


def _splitmix64(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def tie_keys(
    seed: int, idx: npt.NDArray[np.integer], t: npt.NDArray[np.integer]
) -> npt.NDArray[np.float64]:
    """Tie-breaking keys in [0, 1) for prompts ``idx`` at update counts ``t``.

    ``key = (splitmix64(splitmix64(seed) + idx * phi + t * c) >> 11) * 2**-53``: 53 random bits, so
    two members of one tie group collide with probability 2**-53 (their order is then unspecified).
    """
    base = _splitmix64(np.array([seed], dtype=np.uint64))[0]
    z = base + idx.astype(np.uint64) * _GOLDEN + t.astype(np.uint64) * _MIX_T
    return (_splitmix64(z) >> np.uint64(11)).astype(np.float64) * _INV_2_53


def generator(seed: int, *words: int) -> np.random.Generator:
    """A PCG64 stream determined by ``(seed, *words)`` alone (e.g. ``(seed, step, round)``)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *words])))
