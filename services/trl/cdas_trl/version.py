"""The TRL release the integration is built against, checked when the trainer is built.

``CoordinatorGRPOTrainer`` overrides two private methods of TRL's ``GRPOTrainer`` and relies on how
``_prepare_inputs`` buffers a generation batch; another release may move either, silently. So a
different version is refused with a clear message rather than trained on.
"""

from __future__ import annotations

from cdas.client.pinned import check_pinned

TRL_VERSION = "1.16.0"


class TRLVersionError(RuntimeError):
    """The installed TRL is not the release this integration was built and tested against."""


def check_trl_version(found: str | None = None) -> str:
    """Return the installed version, or raise naming it when it is not ``TRL_VERSION``."""
    return check_pinned("trl", TRL_VERSION, "cdas-trl", TRLVersionError, found)
