"""Exceptions the SDK raises: one class per kind of refusal, each with the server's message.

They are the very classes the server raises (modelog.shared.errors): a failed call comes back as the
class the server raised, with its message on one line and the structured details it sent (`google.rpc`
ErrorInfo as `reason` and `metadata`, BadRequest as `violations`, ResourceInfo as `resource`), so user
code writes `except modelog.errors.InvalidArgument` instead of inspecting status codes. The translation
happens once, for every call of a `modelog.Connection` (modelog._client), so no `grpc` exception
reaches a user of the SDK.
"""

from __future__ import annotations

from modelog.shared.errors import (
    TRANSIENT,
    AlreadyExists,
    Cancelled,
    ConcurrencyConflict,
    Conflict,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    IdempotencyKeyReused,
    Internal,
    InvalidArgument,
    ModelogError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    Resource,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    error_for,
)
from modelog.shared.status import UNREACHABLE_HINT, from_rpc

__all__ = [
    "TRANSIENT",
    "UNREACHABLE_HINT",
    "AlreadyExists",
    "Cancelled",
    "ConcurrencyConflict",
    "Conflict",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "IdempotencyKeyReused",
    "Internal",
    "InvalidArgument",
    "ModelogError",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "Resource",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "error_for",
    "from_rpc",
]
