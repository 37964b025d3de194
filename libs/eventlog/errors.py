"""The one base class for errors a person sees, each carrying its gRPC status code.

Modelled on google-api-core's exceptions: raise the domain error anywhere, and the gRPC layer turns it
into a status with `google.rpc` details in one place (modelog_platform.grpc_errors).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class ModelogError(Exception):
    """Base of every error meant for a user; the message must make sense on its own."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        violations: list[FieldViolation] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.violations = violations or []
        self.metadata = metadata or {}


class InvalidArgument(ModelogError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    @classmethod
    def field(cls, name: str, description: str) -> InvalidArgument:
        return cls(f"{name}: {description}", violations=[FieldViolation(name, description)])


class NotFound(ModelogError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(ModelogError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(ModelogError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Unauthenticated(ModelogError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(ModelogError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unavailable(ModelogError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class ConcurrencyConflict(ModelogError):
    """The stream moved since the caller read it: re-read, re-decide, retry."""

    code = grpc.StatusCode.ABORTED
    reason = "STREAM_VERSION_CONFLICT"

    def __init__(self, log: str, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} in the {log} log is at version {actual}, "
            f"but the command expected version {expected}; re-read the stream and retry",
            metadata={
                "log": log,
                "stream_id": stream_id,
                "expected_version": str(expected),
                "actual_version": str(actual),
            },
        )
        self.log = log
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class IdempotencyKeyReused(ModelogError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "IDEMPOTENCY_KEY_REUSED"
