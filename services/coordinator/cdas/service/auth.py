"""Bearer-token auth shared by both front doors: ``Authorization: Bearer <token>`` on REST, the
``authorization`` metadata on gRPC. Compared in constant time."""

from __future__ import annotations

import hmac

from cdas.core.errors import UnauthenticatedError


class TokenCheck:
    def __init__(self, token: str | None) -> None:
        self._expected = token.encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    def check(self, header: str | None) -> None:
        """Raise ``UnauthenticatedError`` unless ``header`` carries the token (or none is set)."""
        if self._expected is None:
            return
        if not header:
            raise UnauthenticatedError("missing bearer token: send 'Authorization: Bearer <token>'")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":  # RFC 9110: the scheme is case-insensitive
            raise UnauthenticatedError(
                "wrong bearer token: the authorization scheme must be Bearer "
                "(send 'Authorization: Bearer <token>')"
            )
        if not hmac.compare_digest(credentials.strip().encode(), self._expected):
            raise UnauthenticatedError("wrong bearer token")
