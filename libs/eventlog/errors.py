"""The server's name for the one error hierarchy, which the SDK shares (modelog.shared.errors).

Raise these anywhere; the gRPC layer turns one into a status with `google.rpc` details in one place
(modelog.shared.status, through modelog_platform.grpc_errors), and the SDK rebuilds the same class.
"""

from __future__ import annotations

from modelog.shared.errors import (
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
)

__all__ = [
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
]
