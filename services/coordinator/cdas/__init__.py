"""cdas: the sampling coordinator for RL training of LLMs.

CDAS (Competence-Difficulty Alignment Sampling) and the baselines, as an in-process library::

    import cdas
    coord = cdas.Coordinator(cdas.MemoryStore())
    coord.put_run("run-1", strategy="cdas", prompts=12000)
    batch = coord.next_batch("run-1", step=1, size=1024)
    coord.report_results("run-1", step=1, results=[{"prompt_id": p, "correct": 3, "total": 8}
                                                    for p in batch.prompt_ids])
"""

from cdas.coordinator import Coordinator
from cdas.core.errors import (
    CdasError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PromptNotFoundError,
    RunNotFoundError,
    StoreUnavailableError,
)
from cdas.core.results import Result
from cdas.core.strategies import REGISTRY as STRATEGIES
from cdas.core.views import (
    Advance,
    Batch,
    PromptColumns,
    PromptInfo,
    PromptPage,
    ReportOutcome,
    RunInfo,
    RunState,
    StepSummary,
)
from cdas.store import MemoryStore, RedisStore, Store

__version__ = "0.1.0"

__all__ = [
    "STRATEGIES",
    "Advance",
    "Batch",
    "CdasError",
    "ConflictError",
    "Coordinator",
    "InvalidArgumentError",
    "MemoryStore",
    "NotFoundError",
    "PromptColumns",
    "PromptInfo",
    "PromptNotFoundError",
    "PromptPage",
    "RedisStore",
    "ReportOutcome",
    "Result",
    "RunInfo",
    "RunNotFoundError",
    "RunState",
    "StepSummary",
    "Store",
    "StoreUnavailableError",
    "__version__",
]
