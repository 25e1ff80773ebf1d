"""cdas-rollout: a rollout worker for the cdas coordinator.

For setups where generation runs apart from the trainer: the worker asks the coordinator for each
step's prompt ids, samples G answers per prompt (vLLM offline, an OpenAI-compatible server, or
transformers), grades them with math-verify against the dataset's ground truth and reports the
per-rollout rewards, so that the coordinator's difficulty and competence estimates follow the
model. See ``cdas_rollout.worker`` for the loop and its fault handling, ``cdas-rollout --help``
for the command line.
"""

from cdas_rollout.backends import (
    Backend,
    OpenAIBackend,
    SamplingSettings,
    TransformersBackend,
    VLLMBackend,
    make_backend,
)
from cdas_rollout.dataset import Dataset, Example, PromptFormatter, load_dataset
from cdas_rollout.grading import grade, grade_group, last_boxed
from cdas_rollout.worker import RolloutWorker, StepReport, WorkerConfig, load_reports

__all__ = [
    "Backend",
    "Dataset",
    "Example",
    "OpenAIBackend",
    "PromptFormatter",
    "RolloutWorker",
    "SamplingSettings",
    "StepReport",
    "TransformersBackend",
    "VLLMBackend",
    "WorkerConfig",
    "grade",
    "grade_group",
    "last_boxed",
    "load_dataset",
    "load_reports",
    "make_backend",
]
