"""What a trainer integration (TRL, verl) does with its coordinator at the edges: register its
run at start, and stop with an error naming the coordinator and the retry setting when a call
outlasts the client's retries. One place, so both integrations say the same thing the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from cdas.core.errors import InvalidArgumentError, ServiceUnavailableError
from cdas.core.views import RunInfo


class CoordinatorUnreachableError(ConnectionError):
    """The coordinator did not answer within the integration's ``retry_for`` seconds (the
    message names the coordinator and the setting)."""


class RunSettings(Protocol):
    """The run an integration asks for, and where its coordinator is (for messages)."""

    @property
    def run(self) -> str: ...

    @property
    def strategy(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    @property
    def seed(self) -> int: ...

    @property
    def where(self) -> str: ...


def call(client: Any, method: str, *args: Any, where: str, retry: str) -> Any:
    """``client.method(*args)``; a coordinator still unavailable when the client's retries are
    spent becomes a ``CoordinatorUnreachableError`` naming ``where`` and ``retry`` (the setting
    and its value, e.g. ``CoordinatorSettings.retry_for=30s``)."""
    try:
        return getattr(client, method)(*args)
    except ServiceUnavailableError as error:
        raise CoordinatorUnreachableError(
            f"coordinator {where} did not answer {method} within {retry}: {error}"
        ) from error


def register(
    call: Callable[..., Any],
    settings: RunSettings,
    prompt_ids: Sequence[str],
    refused: Callable[[str], Exception],
    log: logging.Logger,
) -> RunInfo:
    """Create the run with the dataset's prompt ids, or find it unchanged (``put_run`` is
    idempotent), through ``call`` (``call`` above, bound to the integration's client). A run the
    coordinator refuses (another config under the id, a bad strategy or param) is ``refused``
    (the integration's settings error), naming the run, its strategy and params."""
    params = dict(settings.params)
    try:
        run: RunInfo = call("put_run", settings.run, settings.strategy, params, settings.seed,
                            prompt_ids)  # fmt: skip
    except InvalidArgumentError as error:
        raise refused(
            f"{settings.where} refused run {settings.run!r} (strategy {settings.strategy!r}, "
            f"params {params!r}): {error}"
        ) from error
    log.info(
        "coordinator %s: run %s (%s, %d prompts, %s)",
        settings.where,
        run.run_id,
        run.strategy,
        run.size,
        "created" if run.created else f"found at step {run.step}",
    )
    return run
