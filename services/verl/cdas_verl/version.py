"""The verl release the integration is built against, checked when the sampler is built.

verl's curriculum-sampler hook (``data.sampler.class_path``, ``AbstractCurriculumSampler``) is
marked experimental and was dropped in verl 0.8.0: 0.7.1 is the last release that has it. The
sampler also relies on when ``RayPPOTrainer.fit`` saves the dataloader and calls ``update``; another
release may move either, silently. So a different version is refused with a clear message.
"""

from __future__ import annotations

from cdas.client.pinned import check_pinned

VERL_VERSION = "0.7.1"


class VerlVersionError(RuntimeError):
    """The installed verl is not the release this integration was built and tested against."""


def check_verl_version(found: str | None = None) -> str:
    """Return the installed version, or raise naming it when it is not ``VERL_VERSION``."""
    return check_pinned("verl", VERL_VERSION, "cdas-verl", VerlVersionError, found)
