"""One coordinator URL, the right client: what trainers and workers take on their command line.

``http://host:8000`` or ``https://...`` gives a ``RestClient``, ``grpc://host:50051`` a
``GrpcClient``; anything else is a ``ValueError`` naming the URL. ``cdas-openrlhf`` and
``cdas-rollout`` both accept either form.
"""

from __future__ import annotations

from cdas.client.grpc import GrpcClient
from cdas.client.rest import RestClient
from cdas.client.retry import RetryPolicy

SCHEMES = ("http://", "https://", "grpc://")


def connect(
    url: str, token: str | None = None, *, retry: RetryPolicy | None = None
) -> RestClient | GrpcClient:
    """The SDK client for ``url`` (a trailing ``/`` is ignored)."""
    if url.startswith("grpc://"):
        return GrpcClient(url.removeprefix("grpc://").rstrip("/"), token, retry=retry)
    if url.startswith(("http://", "https://")):
        return RestClient(url.rstrip("/"), token, retry=retry)
    raise ValueError(f"coordinator URL {url!r} must start with http://, https:// or grpc://")
