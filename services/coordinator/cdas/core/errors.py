"""The coordinator's one exception hierarchy.

Every failure a caller can act on is one of these, raised by the core and the stores and mapped to
an HTTP status and a gRPC code at one boundary (the service's error table)::

    CdasError                     code               REST  gRPC
    ├── InvalidArgumentError      invalid_argument   422   INVALID_ARGUMENT
    ├── NotFoundError             not_found          404   NOT_FOUND
    │   ├── RunNotFoundError      run_not_found      404   NOT_FOUND
    │   └── PromptNotFoundError   prompt_not_found   404   NOT_FOUND
    ├── ConflictError             conflict           409   FAILED_PRECONDITION
    ├── UnauthenticatedError      unauthenticated    401   UNAUTHENTICATED
    ├── PermissionDeniedError     permission_denied  403   PERMISSION_DENIED
    ├── PayloadTooLargeError      payload_too_large  413   RESOURCE_EXHAUSTED
    ├── MethodNotAllowedError     method_not_allowed 405   UNIMPLEMENTED
    ├── UnsupportedMediaTypeError unsupported_media_type 415 INVALID_ARGUMENT (REST only)
    ├── StoreUnavailableError     store_unavailable  503   UNAVAILABLE
    │   └── ServiceUnavailableError service_unavailable 503 UNAVAILABLE (client side)
    └── InternalError             internal           500   INTERNAL

``STATUS`` below is that table in code, the one place both front doors and both clients read.
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


class ServiceUnavailableError(StoreUnavailableError):
    """Raised by the SDK clients when the coordinator itself cannot be reached (connection
    refused, timeout, a proxy's 502): retried like an unreachable store."""

    code = "service_unavailable"


class UnauthenticatedError(CdasError):
    """A /v1 call (or a gRPC call other than health) without the configured bearer token."""

    code = "unauthenticated"


class PermissionDeniedError(CdasError):
    """A valid token whose scopes do not cover the call (``details["needs"]`` names the scope)."""

    code = "permission_denied"


class PayloadTooLargeError(CdasError):
    """A request body (or gRPC message) larger than the service's limit."""

    code = "payload_too_large"


class MethodNotAllowedError(CdasError):
    """An HTTP method the path does not offer."""

    code = "method_not_allowed"


class UnsupportedMediaTypeError(CdasError):
    """A REST body of another Content-Type than the endpoint takes. Refusing it keeps a web page
    from posting to the coordinator cross-site: a JSON Content-Type forces a CORS preflight,
    which the coordinator never grants."""

    code = "unsupported_media_type"


class InternalError(CdasError):
    """A bug: the service logs the traceback and answers this, never a stack trace."""

    code = "internal"


STATUS: dict[str, tuple[int, str]] = {
    InvalidArgumentError.code: (422, "INVALID_ARGUMENT"),
    NotFoundError.code: (404, "NOT_FOUND"),
    RunNotFoundError.code: (404, "NOT_FOUND"),
    PromptNotFoundError.code: (404, "NOT_FOUND"),
    ConflictError.code: (409, "FAILED_PRECONDITION"),
    UnauthenticatedError.code: (401, "UNAUTHENTICATED"),
    PermissionDeniedError.code: (403, "PERMISSION_DENIED"),
    PayloadTooLargeError.code: (413, "RESOURCE_EXHAUSTED"),
    MethodNotAllowedError.code: (405, "UNIMPLEMENTED"),
    UnsupportedMediaTypeError.code: (415, "INVALID_ARGUMENT"),
    StoreUnavailableError.code: (503, "UNAVAILABLE"),
    ServiceUnavailableError.code: (503, "UNAVAILABLE"),
    InternalError.code: (500, "INTERNAL"),
}
"""The error table: each error code's HTTP status and gRPC status code name."""

_BY_CODE: dict[str, type[CdasError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        RunNotFoundError,
        PromptNotFoundError,
        ConflictError,
        UnauthenticatedError,
        PermissionDeniedError,
        PayloadTooLargeError,
        MethodNotAllowedError,
        UnsupportedMediaTypeError,
        StoreUnavailableError,
        ServiceUnavailableError,
        InternalError,
    )
}


def http_status(error: CdasError) -> int:
    return STATUS.get(error.code, STATUS[InternalError.code])[0]


def grpc_code_name(error: CdasError) -> str:
    return STATUS.get(error.code, STATUS[InternalError.code])[1]


def from_code(code: str, message: str, details: dict[str, Any] | None = None) -> CdasError:
    """Rebuild the typed error a server reported (the clients raise what the library raises)."""
    cls = _BY_CODE.get(code, InternalError)
    error = cls.__new__(cls)
    CdasError.__init__(error, message, **(details or {}))
    return error


def retryable(error: CdasError) -> bool:
    """Errors a client may retry unchanged: only an unreachable store (every call is idempotent)."""
    return isinstance(error, StoreUnavailableError)
