"""OpenRLHF GRPO with the cdas coordinator choosing the prompts.

OpenRLHF 0.11.2 has no hook for choosing prompts, so the integration is the smallest set of
replacements that leaves OpenRLHF's own generation, reward, dynamic filtering and PPO code running:

- ``loader.CoordinatorPromptLoader`` stands in for the prompts dataloader: each step it serves the
  coordinator's batch (``next_batch(run, step, B)``), and dynamic filtering's refills from further
  rounds of the same step;
- ``generator.CoordinatorSamplesGenerator`` sees every complete group of G samples, those the
  dynamic filter drops included, and the loader posts them (the step's last post, inside an
  episode, with the next step's batch in one ``advance`` call);
- ``trainer.CoordinatorPPOTrainer`` wires both into OpenRLHF's ``PPOTrainer``;
- ``launch`` is ``cdas-openrlhf``: OpenRLHF's ``train_ppo_ray`` flags plus ``--coordinator.*``.

Import this package only where OpenRLHF is installed (the trainer image); the coordinator never
imports it.
"""

from cdas_openrlhf.settings import CoordinatorSettings
from cdas_openrlhf.version import OPENRLHF_VERSION, check_openrlhf_version

__all__ = ["OPENRLHF_VERSION", "CoordinatorSettings", "check_openrlhf_version"]
