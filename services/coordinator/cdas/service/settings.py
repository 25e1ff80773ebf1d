"""The service's settings, from flags and the environment (``cdas serve --help``)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cdas.core.errors import InvalidArgumentError
from cdas.service.access import Access, Scope

TOKEN_ENV = "CDAS_API_TOKEN"
"""Environment variable holding the bearer token (``--token-file`` takes precedence)."""

TLS_CERT_ENV = "CDAS_TLS_CERT"
"""Environment variable naming the server's certificate chain (PEM), as ``--tls-cert``."""

TLS_KEY_ENV = "CDAS_TLS_KEY"
"""Environment variable naming the certificate's private key (PEM), as ``--tls-key``."""

DEFAULT_MAX_BODY = 256 << 20
"""Largest request body (REST) and message (gRPC): 256 MiB, room for the snapshot of a run of a
few million prompts; larger prompt sets are registered in chunks."""


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int = 50051
    token: str | None = None
    """The admin token (``--token-file`` / ``$CDAS_API_TOKEN``)."""
    scoped_tokens: Mapping[str, tuple[Scope, ...]] | None = None
    """Further tokens and their scopes (``--tokens-file``; ``cdas.service.access``)."""
    metrics_token: bool = False
    """Whether ``GET /metrics`` needs a token with the read scope (when tokens are set)."""
    run_metrics: bool = True
    """Whether ``/metrics`` shows per-run series (run ids, competence, steps); a deployment
    shared by several teams drops them."""
    max_body_bytes: int = DEFAULT_MAX_BODY
    grace_seconds: float = 10.0
    """How long in-flight calls may take to finish at shutdown."""
    drain_seconds: float = 0.0
    """How long readiness and health say NOT_SERVING before the listeners close (lets a load
    balancer stop sending traffic first)."""
    threads: int = 32
    """Worker threads for store calls (the stores block on I/O and locks)."""
    tls_cert: str | None = None
    """The certificate chain (PEM file) both doors serve; with ``tls_key``, REST is HTTPS and
    gRPC is TLS on the same ports. None (with ``tls_key`` None): plaintext."""
    tls_key: str | None = None
    """The certificate's private key (PEM file); given with ``tls_cert`` or not at all."""

    def __post_init__(self) -> None:
        check_tls_pair(self.tls_cert, self.tls_key)

    def access(self) -> Access:
        """Both doors' token check: the admin token and the scoped tokens."""
        return Access.of(self.token, self.scoped_tokens)

    @property
    def tls(self) -> bool:
        """Whether both doors serve TLS."""
        return bool(self.tls_cert and self.tls_key)


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


def check_tls_pair(cert: str | None, key: str | None) -> None:
    """Both or neither: a certificate without its key (or a key alone) cannot serve TLS, and
    falling back to plaintext would expose what the operator meant to protect."""
    if cert and not key:
        raise InvalidArgumentError(
            f"--tls-cert {cert!r} needs --tls-key (or ${TLS_KEY_ENV}): the certificate's key",
            tls_cert=cert,
        )
    if key and not cert:
        raise InvalidArgumentError(
            f"--tls-key {key!r} needs --tls-cert (or ${TLS_CERT_ENV}): the certificate it signs",
            tls_key=key,
        )


def load_tls(cert: str | None, key: str | None) -> tuple[bytes, bytes] | None:
    """The PEM bytes of (certificate chain, private key), None for plaintext. Read and checked
    as a pair before anything is bound, so a missing file, a file that is not PEM or a key of
    another certificate fails at start with the path named, not at the first handshake."""
    check_tls_pair(cert, key)
    if not cert or not key:
        return None
    pems = []
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            pems.append(Path(path).read_bytes())
        except OSError as exc:
            raise InvalidArgumentError(
                f"{flag} {path!r} cannot be read: {exc.strerror}", flag=flag, path=path
            ) from exc

    def encrypted() -> str:
        # without this OpenSSL would prompt on the terminal; gRPC cannot read such a key anyway
        raise InvalidArgumentError(
            f"--tls-key {key!r} is encrypted: give the key unencrypted (a mounted secret)",
            tls_key=key,
        )

    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key, password=encrypted)
    except ssl.SSLError as exc:
        raise InvalidArgumentError(
            f"--tls-cert {cert!r} and --tls-key {key!r} are not a PEM certificate and its key: "
            f"{exc}",
            tls_cert=cert,
            tls_key=key,
        ) from exc
    return pems[0], pems[1]
