"""verl's curriculum sampler backed by the cdas coordinator.

``CoordinatorSampler`` is loaded by verl 0.7.1 from its config (``data.sampler.class_path`` /
``class_name``): each step's prompts are ``next_batch(run, step, B)`` and every group's rewards go
back when verl calls the sampler's ``update``, with the next step's batch in the same ``advance``
call (``report_results`` at verl's last step). Settings: ``data.sampler.cdas.*`` or ``CDAS_*``
variables (``cdas_verl.settings``).

Import this package only where verl is installed (the trainer side); the coordinator never
imports it.
"""

from cdas_verl.settings import SamplerSettings, SettingsError
from cdas_verl.version import VERL_VERSION, VerlVersionError, check_verl_version

__all__ = [
    "VERL_VERSION",
    "SamplerSettings",
    "SettingsError",
    "VerlVersionError",
    "check_verl_version",
]
