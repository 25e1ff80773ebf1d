"""The OpenRLHF release the integration is built against, checked at start.

The integration overrides private methods of OpenRLHF's samples generator and relies on how
``PPOTrainer.fit`` drives it; another release may move either, silently. So a different version is
refused with a clear message rather than trained on.
"""

from __future__ import annotations

from importlib import metadata

OPENRLHF_VERSION = "0.11.2"


class OpenRLHFVersionError(RuntimeError):
    """The installed OpenRLHF is not the release this integration was built and tested against."""


def installed_openrlhf_version() -> str | None:
    try:
        return metadata.version("openrlhf")
    except metadata.PackageNotFoundError:
        return None


def check_openrlhf_version(found: str | None = None) -> str:
    """Return the installed version, or raise naming it when it is not ``OPENRLHF_VERSION``."""
    found = installed_openrlhf_version() if found is None else found
    if found is None:
        raise OpenRLHFVersionError(
            f"openrlhf is not installed; cdas-openrlhf needs openrlhf=={OPENRLHF_VERSION}"
        )
    if found != OPENRLHF_VERSION:
        raise OpenRLHFVersionError(
            f"openrlhf {found} is installed; cdas-openrlhf is built against "
            f"openrlhf=={OPENRLHF_VERSION} (pip install openrlhf=={OPENRLHF_VERSION})"
        )
    return found
