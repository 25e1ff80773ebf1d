"""The paper's published figures (shared/CDAS.md, "Published numbers"), for side-by-side tables.

Qwen2.5-7B, GRPO in verl, MATH (12,000 prompts), B = 1024, G = 8, 110 steps. Accuracy is the
average over 6 math benchmarks (percent); GPU-hours and zero-gradient shares are read off its
Figures 2b and 5 by eye.
"""

from __future__ import annotations

ACCURACY = {
    "random": {55: 43.20, 110: 44.09},
    "curriculum": {55: 43.20, 110: 44.44},
    "prioritized": {55: 44.06, 110: 44.66},
    "dynamic": {55: 43.99, 110: 45.52},
    "cdas": {55: 44.51, 110: 45.89},
}
GPU_HOURS_110 = {"random": 304.0, "prioritized": 409.0, "cdas": 393.0, "dynamic": 916.0}
ZERO_GRADIENT = {
    "cdas": {30: 0.08, 110: 0.30},
    "random": {30: 0.65, 110: 0.75},
    "prioritized": {30: 0.87, 110: 0.53},
}
CDAS_STEPS_TO_RANDOM_FINAL = 55
"""CDAS at step 55 (44.51) already beats Random at step 110 (44.09): "half the steps"."""
CDAS_TIME_SAVED_VS_DYNAMIC = 0.57
"""1 - 393 / 916: CDAS's step time against dynamic sampling's over 110 steps."""
