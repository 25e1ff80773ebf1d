"""TRL's GRPO with the cdas coordinator choosing the prompts.

``CoordinatorGRPOTrainer`` is TRL 1.16's ``GRPOTrainer`` with one more argument,
``coordinator=CoordinatorSettings(run=...)``: each generation batch's prompts come from the
coordinator, and every group's rewards go back with the next batch's ask, in one ``advance``
call (on their own, ``report_results``, at a checkpoint and when training ends). TRL's own
generation, reward functions, loss, gradient accumulation, ``num_iterations``, evaluation and
checkpoints keep working.

Import this package only where TRL is installed (the trainer side); the coordinator never
imports it.
"""

from cdas_trl.settings import CoordinatorSettings, SettingsError
from cdas_trl.trainer import (
    CheckpointStateError,
    CoordinatorGRPOTrainer,
    CoordinatorUnreachableError,
    UnsupportedSetupError,
)
from cdas_trl.version import TRL_VERSION, TRLVersionError, check_trl_version

__all__ = [
    "TRL_VERSION",
    "CheckpointStateError",
    "CoordinatorGRPOTrainer",
    "CoordinatorSettings",
    "CoordinatorUnreachableError",
    "SettingsError",
    "TRLVersionError",
    "UnsupportedSetupError",
    "check_trl_version",
]
