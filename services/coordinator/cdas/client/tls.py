"""TLS for the SDK clients: the CA bundle that signs the coordinator's certificate, and telling a
failed handshake apart from a coordinator that is down.

A coordinator served with ``cdas serve --tls-cert --tls-key`` is reached at ``https://`` (REST) or
``grpcs://`` (gRPC). The clients trust the system's (httpx's, gRPC's) roots unless given ``ca``, a
PEM bundle (a private CA, a self-signed certificate); ``$CDAS_CA_FILE`` names one for every
integration that reaches the coordinator through ``cdas.client.connect``.

A certificate the client does not trust is a configuration error, not an outage: retrying it for
the ten minutes a trainer rides out a restart would only hide it, so it is a ``TlsError``, which
the ``RetryPolicy`` never retries.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from cdas.core.errors import CdasError, InvalidArgumentError

CA_ENV = "CDAS_CA_FILE"
"""Environment variable naming the CA bundle (PEM) the clients verify the coordinator with."""

NOT_TLS = ("WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE", "HTTP_REQUEST")
"""OpenSSL reasons meaning the other side does not speak TLS (a plaintext coordinator)."""


class TlsError(CdasError):
    """The TLS handshake with the coordinator failed: its certificate is not signed by the CA the
    client trusts (or names another host), or one side speaks TLS and the other does not. Raised
    by the SDK clients only; never retried (retrying cannot fix a certificate)."""

    code = "tls_failed"


def default_ca(environ: Mapping[str, str] | None = None) -> str | None:
    """The CA bundle ``$CDAS_CA_FILE`` names, None when unset or empty."""
    env = os.environ if environ is None else environ
    return env.get(CA_ENV, "").strip() or None


def read_ca(ca: str) -> bytes:
    """The PEM bytes of the CA bundle at ``ca``; an unreadable or non-PEM file is an
    ``InvalidArgumentError`` naming the path (at construction, not at the first call)."""
    try:
        with open(ca, "rb") as file:
            pem = file.read()
    except OSError as exc:
        raise InvalidArgumentError(
            f"CA file {ca!r} cannot be read: {exc.strerror}", ca_file=ca
        ) from exc
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidArgumentError(f"CA file {ca!r} holds no PEM certificate", ca_file=ca)
    return pem


def ssl_context(ca: str) -> ssl.SSLContext:
    """A client context that trusts only the certificates in ``ca`` (hostnames checked)."""
    try:
        return ssl.create_default_context(cadata=read_ca(ca).decode("ascii", "replace"))
    except ssl.SSLError as exc:
        raise InvalidArgumentError(f"CA file {ca!r} does not load: {exc}", ca_file=ca) from exc


def _reason(exc: BaseException) -> str:
    return f"{getattr(exc, 'reason', '') or ''} {exc}".upper()


def from_ssl_error(exc: BaseException, where: str, ca: str | None) -> TlsError | None:
    """The ``TlsError`` for a failed handshake found in ``exc``'s chain of causes, or None when
    the failure is something else (refused, reset, closed mid-handshake: those stay retryable,
    a restarting coordinator does that)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return certificate_error(where, ca, cause.verify_message or str(cause))
        if isinstance(cause, ssl.SSLError) and any(r in _reason(cause) for r in NOT_TLS):
            return not_tls_error(where, str(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def certificate_error(where: str, ca: str | None, why: str) -> TlsError:
    """The coordinator's certificate was not verified with the CA the client trusts."""
    trusted = f"the CA file {ca!r}" if ca else f"the default CAs (no CA file: --ca-file, ${CA_ENV})"
    return TlsError(
        f"TLS certificate verification failed for {where} with {trusted}: {why}",
        where=where,
        ca_file=ca,
    )


PLAINTEXT_HINT = "(does the coordinator serve TLS? then use https:// or grpcs:// and a CA file)"
"""Appended to the retryable error of a plaintext client whose connection the server closed
unanswered: what a TLS server does to a plaintext request, but also what a crashing one does, so
it stays retryable and only says what to check."""


def not_tls_error(where: str, why: str) -> TlsError:
    """A TLS client met a plaintext server (or something else that is not TLS)."""
    return TlsError(
        f"TLS handshake with {where} failed: it does not speak TLS (a plaintext coordinator? "
        f"use http:// or grpc:// then): {why}",
        where=where,
    )
