"""Where the coordinator is and which run the trainer feeds: ``CoordinatorSettings``.

Three ways to reach a coordinator, one setting each:

- nothing (the default): the library, embedded in the trainer's process
  (``cdas.Coordinator(cdas.MemoryStore())``). Its state lives in the process, so the trainer
  writes it into every checkpoint and restores it on ``resume_from_checkpoint``;
- ``url``: a ``cdas serve`` service, ``http://host:8000`` (REST) or ``grpc://host:50051``, through
  the SDK (``cdas.client.connect``), retried for ``retry_for`` seconds when unreachable. The API
  token is read where the trainer runs: from ``token_file`` (a mounted secret), else from
  ``$CDAS_API_TOKEN``; it is never a setting, so it does not end up in logs or configs. A TLS
  coordinator is ``https://`` or ``grpcs://``, verified with ``ca_file`` (else ``$CDAS_CA_FILE``,
  else the default CAs);
- ``client``: a ready object with the library's methods (a ``cdas.Coordinator`` on any store, a
  ``RestClient``, a ``GrpcClient``); its owner keeps it, the trainer only calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import cdas
from cdas.client import RetryPolicy, connect
from cdas.client.connect import SCHEMES
from cdas.core.api import Batches, RunSetup
from cdas.core.errors import InvalidArgumentError
from cdas.service.settings import load_token


class SettingsError(ValueError):
    """A coordinator setting is missing or malformed (the message names it and its value)."""


class CoordinatorClient(RunSetup, Batches, Protocol):
    """The calls the trainer makes (``cdas.core.api``): ``put_run``, then a step's calls
    (``next_batch``, ``report_results``, ``advance``); the library and every SDK client have
    them."""


@dataclass(frozen=True)
class CoordinatorSettings:
    run: str
    """The run id. The first start creates the run with the dataset's prompt ids; a restart finds
    it (``put_run`` is idempotent); another prompt set or config under the same id is refused."""
    url: str | None = None
    """``http://host:8000``, ``https://...``, ``grpc://host:50051`` or ``grpcs://...``; None (with
    no ``client``): the library embedded in this process."""
    client: CoordinatorClient | None = None
    """A ready coordinator object instead of ``url``, e.g. ``cdas.Coordinator(cdas.RedisStore(u))``;
    its owner keeps it (and its state)."""
    strategy: str = "cdas"
    """The sampling strategy: ``cdas``, ``random``, ``prioritized``, ``curriculum``, ``dynamic``,
    ``mopps`` or ``learnability``."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The strategy's parameters (e.g. ``{"threshold": 0.5, "warmup": True}``)."""
    seed: int = 0
    id_column: str | None = None
    """The dataset column of prompt ids (it must exist); None: content hashes of each row's
    ``prompt`` and ``label_column`` (``cdas.client.prompt_ids``)."""
    label_column: str | None = None
    """The column hashed with the prompt when there is no id column (e.g. ``"solution"``), so
    the same question with two answers gets two ids."""
    token_file: str | None = None
    """A file holding the API token; else ``$CDAS_API_TOKEN``; else no token."""
    ca_file: str | None = None
    """With an ``https://`` or ``grpcs://`` url: the CA bundle (PEM) that signs the coordinator's
    certificate; else ``$CDAS_CA_FILE``; else the default CAs."""
    retry_for: float = 600.0
    """Seconds to keep retrying an unreachable coordinator (``url`` only) before the trainer
    fails."""

    def __post_init__(self) -> None:
        if not self.run:
            raise SettingsError(
                "CoordinatorSettings.run is required (the run id the trainer feeds)"
            )
        if self.url is not None and self.client is not None:
            raise SettingsError(
                f"CoordinatorSettings takes a url or a client, not both (url {self.url!r})"
            )
        if self.url is not None and not self.url.startswith(SCHEMES):
            raise SettingsError(
                "CoordinatorSettings.url must start with http://, https://, grpc:// or grpcs://, "
                f"got {self.url!r}"
            )
        if not self.retry_for >= 0:
            raise SettingsError(f"CoordinatorSettings.retry_for must be >= 0, got {self.retry_for}")
        if not isinstance(self.seed, int):
            raise SettingsError(f"CoordinatorSettings.seed must be an integer, got {self.seed!r}")

    @property
    def embedded(self) -> bool:
        """Whether the trainer runs the library itself (and so keeps its state in checkpoints)."""
        return self.url is None and self.client is None

    @property
    def where(self) -> str:
        """The coordinator, in words, for messages."""
        if self.url is not None:
            return self.url
        return "the embedded coordinator" if self.client is None else type(self.client).__name__

    def token(self) -> str | None:
        """The API token: the content of ``token_file``, else ``$CDAS_API_TOKEN`` (the one rule
        of ``cdas serve`` and every client, ``cdas.service.settings.load_token``)."""
        try:
            return load_token(self.token_file)
        except InvalidArgumentError as exc:
            raise SettingsError(f"CoordinatorSettings.token_file: {exc.message}") from exc

    def connect(self) -> CoordinatorClient:
        """The coordinator: the given client, an SDK client for ``url``, or a new embedded one."""
        if self.client is not None:
            return self.client
        if self.url is None:
            return cdas.Coordinator(cdas.MemoryStore())
        retry, token = RetryPolicy(for_seconds=self.retry_for, max_delay=5.0), self.token()
        try:
            return connect(self.url, token, retry=retry, ca=self.ca_file)
        except InvalidArgumentError as exc:  # an unreadable CA file
            raise SettingsError(f"CoordinatorSettings.ca_file: {exc.message}") from exc
