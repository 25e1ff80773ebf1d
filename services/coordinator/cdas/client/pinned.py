"""A trainer integration's pinned framework release, checked when it starts.

The integrations (``cdas-openrlhf``, ``cdas-trl``) override private methods of the framework they
plug into; another release may move them, silently. So each refuses any release but the one it was
built and tested against, with a message naming what is installed and what to install. Standard
library only: the coordinator's install may hold it without the framework.
"""

from __future__ import annotations

from importlib import metadata


def check_pinned(
    distribution: str,
    version: str,
    integration: str,
    error: type[Exception],
    found: str | None = None,
) -> str:
    """Return the installed version of ``distribution`` (``found``, when given, stands for it),
    or raise ``error`` naming it when it is not ``version``."""
    if found is None:
        try:
            found = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            raise error(
                f"{distribution} is not installed; {integration} needs {distribution}=={version}"
            ) from None
    if found != version:
        raise error(
            f"{distribution} {found} is installed; {integration} is built against "
            f"{distribution}=={version} (pip install {distribution}=={version})"
        )
    return found
