"""The sampling strategies, one module each, registered by name in ``REGISTRY``."""

from cdas.core.strategies import (
    cdas,
    curriculum,
    dynamic,
    learnability,
    mopps,
    pooled,
    prioritized,
    random_sampling,
)
from cdas.core.strategies.base import REGISTRY, Request, Strategy, Update, build, normalized_params

__all__ = [
    "REGISTRY",
    "Request",
    "Strategy",
    "Update",
    "build",
    "cdas",
    "curriculum",
    "dynamic",
    "learnability",
    "mopps",
    "normalized_params",
    "pooled",
    "prioritized",
    "random_sampling",
]
