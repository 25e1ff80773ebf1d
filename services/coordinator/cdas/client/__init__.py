"""The SDK: remote clients with the library's method names, so a trainer moves from in-process to
remote by changing one line::

    coord = cdas.Coordinator(cdas.MemoryStore())            # in process
    coord = cdas.client.RestClient("http://coordinator:8000")  # over REST
    coord = cdas.client.GrpcClient("coordinator:50051")        # over gRPC

Each raises the library's typed errors and retries transient failures (an unreachable
coordinator or store) with jittered exponential backoff; this is safe because every call is
idempotent (``next_batch`` per (step, round), ``report_results`` per (step, prompt)).

A coordinator serving TLS is reached at ``https://`` or ``grpcs://``; ``ca=`` (or
``$CDAS_CA_FILE`` through ``connect``) names the CA bundle that signs its certificate. A failed
handshake is a ``TlsError``, never retried.
"""

from cdas.client.connect import connect
from cdas.client.grpc import GrpcClient
from cdas.client.rest import AsyncRestClient, RestClient
from cdas.client.retry import RetryPolicy
from cdas.client.tls import TlsError

__all__ = ["AsyncRestClient", "GrpcClient", "RestClient", "RetryPolicy", "TlsError", "connect"]
