"""The TRL release the integration is built against, checked when the trainer is built.

``CoordinatorGRPOTrainer`` overrides two private methods of TRL's ``GRPOTrainer`` and relies on how
``_prepare_inputs`` buffers a generation batch; another release may move either, silently. So a
different version is refused with a clear message rather than trained on.
"""

from __future__ import annotations

from importlib import metadata

TRL_VERSION = "1.16.0"


class TRLVersionError(RuntimeError):
    """The installed TRL is not the release this integration was built and tested against."""


def installed_trl_version() -> str | None:
    try:
        return metadata.version("trl")
    except metadata.PackageNotFoundError:
        return None


def check_trl_version(found: str | None = None) -> str:
    """Return the installed version, or raise naming it when it is not ``TRL_VERSION``."""
    found = installed_trl_version() if found is None else found
    if found is None:
        raise TRLVersionError(f"trl is not installed; cdas-trl needs trl=={TRL_VERSION}")
    if found != TRL_VERSION:
        raise TRLVersionError(
            f"trl {found} is installed; cdas-trl is built against trl=={TRL_VERSION} "
            f"(pip install trl=={TRL_VERSION})"
        )
    return found
