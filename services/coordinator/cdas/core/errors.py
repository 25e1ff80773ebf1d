"""The coordinator's one exception hierarchy.

Every failure a caller can act on is one of these, raised by the core and the stores and mapped to
an HTTP status and a gRPC code at one boundary (the service's error table)::

    CdasError                     code             REST  gRPC
    ├── InvalidArgumentError      invalid_argument 422   INVALID_ARGUMENT
    ├── NotFoundError             not_found        404   NOT_FOUND
    │   ├── RunNotFoundError      run_not_found    404   NOT_FOUND
    │   └── PromptNotFoundError   prompt_not_found 404   NOT_FOUND
    ├── ConflictError             conflict         409   ABORTED / ALREADY_EXISTS
    └── StoreUnavailableError     store_unavailable 503  UNAVAILABLE

A message always names the offending value; ``details`` carries it in machine-readable form.
An operation that raises one of these has changed nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CdasError(Exception):
    """Base of every error the coordinator reports to its callers."""

    code: ClassVar[str] = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The contract's error body: ``{"error": {"code", "message", "details"}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidArgumentError(CdasError, ValueError):
    """The request is malformed or out of range (unknown strategy, NaN pass rate, ...)."""

    code = "invalid_argument"


class NotFoundError(CdasError, LookupError):
    """A named object does not exist."""

    code = "not_found"


class RunNotFoundError(NotFoundError):
    code = "run_not_found"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} does not exist", run_id=run_id)


class PromptNotFoundError(NotFoundError):
    code = "prompt_not_found"

    def __init__(self, run_id: str, prompt_id: str) -> None:
        super().__init__(
            f"prompt {prompt_id!r} is not registered in run {run_id!r}",
            run_id=run_id,
            prompt_id=prompt_id,
        )


class ConflictError(CdasError):
    """The request contradicts the state (same run with another config, same batch with another
    size, a step outside the retained window)."""

    code = "conflict"


class StoreUnavailableError(CdasError):
    """The store cannot be reached; the call may be retried unchanged (every call is idempotent)."""

    code = "store_unavailable"
