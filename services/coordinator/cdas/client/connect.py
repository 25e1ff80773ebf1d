"""One coordinator URL, the right client: what trainers and workers take on their command line.

``http://host:8000`` or ``https://...`` gives a ``RestClient``, ``grpc://host:50051`` (plaintext)
or ``grpcs://host:50051`` (TLS) a ``GrpcClient``; anything else is a ``ValueError`` naming the
URL. ``cdas-openrlhf``, ``cdas-rollout``, ``cdas grpo`` and the TRL integration all accept every
form.

TLS is the URL's scheme (https, grpcs); ``ca`` (else ``$CDAS_CA_FILE``) only says which CA to
trust, and plaintext URLs ignore it. So every integration built on ``connect`` reaches a
coordinator with a private CA from that one environment variable, and setting it everywhere does
not break the ones that still talk plaintext.
"""

from __future__ import annotations

from cdas.client.grpc import GrpcClient
from cdas.client.rest import RestClient
from cdas.client.retry import RetryPolicy
from cdas.client.tls import default_ca

SCHEMES = ("http://", "https://", "grpc://", "grpcs://")


def connect(
    url: str,
    token: str | None = None,
    *,
    retry: RetryPolicy | None = None,
    ca: str | None = None,
) -> RestClient | GrpcClient:
    """The SDK client for ``url`` (a trailing ``/`` is ignored). ``ca``: for an https or grpcs
    URL, the PEM bundle that signs the coordinator's certificate (default ``$CDAS_CA_FILE``, else
    the default roots); an unreadable one is an ``InvalidArgumentError`` naming it."""
    ca = ca if ca is not None else default_ca()
    if url.startswith("grpcs://"):
        target = url.removeprefix("grpcs://").rstrip("/")
        return GrpcClient(target, token, retry=retry, ca=ca, tls=True)
    if url.startswith("grpc://"):
        return GrpcClient(url.removeprefix("grpc://").rstrip("/"), token, retry=retry)
    if url.startswith("https://"):
        return RestClient(url.rstrip("/"), token, retry=retry, ca=ca)
    if url.startswith("http://"):
        return RestClient(url.rstrip("/"), token, retry=retry)
    raise ValueError(
        f"coordinator URL {url!r} must start with http://, https://, grpc:// or grpcs://"
    )
