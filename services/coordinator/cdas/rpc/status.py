"""Errors on the gRPC wire: a ``CdasError`` travels as a status code from the error table plus
rich details (``grpc-status-details-bin``, a ``google.rpc.Status``) holding

* ``google.rpc.ErrorInfo``: reason = the error code, domain ``cdas.dev``, metadata
  ``{"details": <the error's details as JSON>}``;
* for invalid input, ``google.rpc.BadRequest`` with the offending field.

The client decodes the same details back into the typed error the library raises.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from cdas.core.errors import (
    CdasError,
    InternalError,
    InvalidArgumentError,
    ServiceUnavailableError,
    from_code,
    grpc_code_name,
)

DOMAIN = "cdas.dev"
DETAILS_KEY = "grpc-status-details-bin"


def grpc_code(error: CdasError) -> grpc.StatusCode:
    return grpc.StatusCode[grpc_code_name(error)]


def status_of(error: CdasError) -> status_pb2.Status:
    """The ``google.rpc.Status`` carrying ``error``."""
    code = grpc_code(error)
    info = error_details_pb2.ErrorInfo(
        reason=error.code,
        domain=DOMAIN,
        metadata={"details": json.dumps(error.details, default=str)},
    )
    details = [info]
    if isinstance(error, InvalidArgumentError) and "field" in error.details:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=str(error.details["field"]), description=error.message
                    )
                ]
            )
        )
    packed = []
    for item in details:
        any_message = any_pb2.Any()
        any_message.Pack(item)
        packed.append(any_message)
    return status_pb2.Status(code=code.value[0], message=error.message, details=packed)


def trailing_metadata(error: CdasError) -> tuple[tuple[str, bytes], ...]:
    return ((DETAILS_KEY, status_of(error).SerializeToString()),)


def error_of(code: grpc.StatusCode, message: str, metadata: Any) -> CdasError:
    """The typed error for a failed call (its code, message and trailing metadata)."""
    for key, value in metadata or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for item in status.details:
                if item.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    item.Unpack(info)
                    if info.domain == DOMAIN:
                        details = json.loads(info.metadata.get("details", "{}"))
                        return from_code(info.reason, status.message, details)
    # No details: a failure outside the coordinator (transport, deadline, proxy).
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ServiceUnavailableError(
            f"coordinator unreachable: {code.name}: {message}", grpc_code=code.name
        )
    return InternalError(f"{code.name}: {message}", grpc_code=code.name)


assert grpc.StatusCode.INVALID_ARGUMENT.value[0] == code_pb2.INVALID_ARGUMENT
