"""Liveness and readiness, shared by REST (/healthz, /readyz) and gRPC (grpc.health.v1).

Live: the process answers. Ready: not draining, and the store answers a ping. At shutdown the
service flips to draining first, so load balancers stop routing before listeners close.
"""

from __future__ import annotations

from cdas.core.errors import StoreUnavailableError
from cdas.store.base import Store


class Health:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.draining = False

    def readiness(self) -> tuple[bool, str]:
        """(ready, why): why is "ok", "draining" or the store's error message."""
        if self.draining:
            return False, "draining"
        try:
            self.store.ping()
        except StoreUnavailableError as exc:
            return False, exc.message
        return True, "ok"
