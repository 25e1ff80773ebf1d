"""The service's settings, from flags and the environment (``cdas serve --help``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cdas.core.errors import InvalidArgumentError

TOKEN_ENV = "CDAS_API_TOKEN"
"""Environment variable holding the bearer token (``--token-file`` takes precedence)."""

DEFAULT_MAX_BODY = 256 << 20
"""Largest request body (REST) and message (gRPC): 256 MiB, room for the snapshot of a run of a
few million prompts; larger prompt sets are registered in chunks."""


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int = 50051
    token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    grace_seconds: float = 10.0
    """How long in-flight calls may take to finish at shutdown."""
    drain_seconds: float = 0.0
    """How long readiness and health say NOT_SERVING before the listeners close (lets a load
    balancer stop sending traffic first)."""
    threads: int = 32
    """Worker threads for store calls (the stores block on I/O and locks)."""


def load_token(token_file: str | None = None, environ: dict[str, str] | None = None) -> str | None:
    """The bearer token from ``token_file`` (whitespace stripped) or ``$CDAS_API_TOKEN``; None
    when neither is set. An empty token is refused: it would guard nothing."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InvalidArgumentError(
                f"token file {token_file!r} cannot be read: {exc.strerror}", token_file=token_file
            ) from exc
        if not token:
            raise InvalidArgumentError(f"token file {token_file!r} is empty", token_file=token_file)
        return token
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    return token or None
