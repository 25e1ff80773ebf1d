"""The OpenRLHF release the integration is built against, checked at start.

The integration overrides private methods of OpenRLHF's samples generator and relies on how
``PPOTrainer.fit`` drives it; another release may move either, silently. So a different version is
refused with a clear message rather than trained on.
"""

from __future__ import annotations

from cdas.client.pinned import check_pinned

OPENRLHF_VERSION = "0.11.2"


class OpenRLHFVersionError(RuntimeError):
    """The installed OpenRLHF is not the release this integration was built and tested against."""


def check_openrlhf_version(found: str | None = None) -> str:
    """Return the installed version, or raise naming it when it is not ``OPENRLHF_VERSION``."""
    return check_pinned("openrlhf", OPENRLHF_VERSION, "cdas-openrlhf", OpenRLHFVersionError, found)
