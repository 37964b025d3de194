"""The one hierarchy of errors a person sees, raised by the server and by the SDK alike.

Modelled on google-api-core's exceptions: one base class, one class per gRPC status code, each
carrying its code. The server raises them anywhere; modelog.shared.status turns one into a status with
`google.rpc` details (ErrorInfo: reason and metadata; BadRequest: field violations; ResourceInfo: what
it is about) and, on the client, turns that status back into the same class with the same details. So
`except modelog.errors.NotFound` catches the server's own NotFound. A message must make sense on its
own: name the stream, the expected and the actual version, the field and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import grpc

TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
"""Codes worth retrying with the same idempotency key: the server may not have seen the call."""

E = TypeVar("E", bound="ModelogError")


class FieldViolation(NamedTuple):
    """A `google.rpc.BadRequest` field violation; compares equal to a `(field, description)` pair."""

    field: str
    description: str


@dataclass(frozen=True)
class Resource:
    """A `google.rpc.ResourceInfo`: the thing an error is about (`stream`, `model`, ...)."""

    type: str
    name: str
    owner: str = ""
    description: str = ""


class ModelogError(Exception):
    """Base of every error meant for a user. `code` is the gRPC status code and `reason` the
    ErrorInfo reason (the code's name unless a class or the raiser says otherwise); `metadata`,
    `violations` and `resource` are the structured details."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "UNKNOWN"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "reason" not in cls.__dict__:
            cls.reason = cls.code.name

    def __init__(
        self,
        message: str,
        *,
        violations: Iterable[FieldViolation | tuple[str, str]] = (),
        metadata: Mapping[str, str] | None = None,
        reason: str = "",
        resource: Resource | None = None,
        code: grpc.StatusCode | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        message = message or self.code.name
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        self.violations = [FieldViolation(*v) for v in violations]
        self.metadata = dict(metadata or {})
        self.resource = resource

    @property
    def transient(self) -> bool:
        """True when retrying (with the same idempotency key) may succeed."""
        return self.code in TRANSIENT

    @classmethod
    def rebuilt(
        cls: type[E],
        message: str,
        *,
        violations: Iterable[FieldViolation | tuple[str, str]] = (),
        metadata: Mapping[str, str] | None = None,
        reason: str = "",
        resource: Resource | None = None,
    ) -> E:
        """The error from its parts as a status carries them (whatever the class's own constructor
        asks for): how the client side rebuilds what the server raised."""
        err = cls.__new__(cls)
        ModelogError.__init__(
            err, message, violations=violations, metadata=metadata, reason=reason, resource=resource
        )
        return err


class Cancelled(ModelogError):
    code = grpc.StatusCode.CANCELLED


class Unknown(ModelogError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(ModelogError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    @classmethod
    def field(cls, name: str, description: str) -> InvalidArgument:
        return cls(f"{name}: {description}", violations=[FieldViolation(name, description)])


class DeadlineExceeded(ModelogError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(ModelogError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ModelogError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(ModelogError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(ModelogError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(ModelogError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Conflict(ModelogError):
    """ABORTED: a concurrent change won (an append found another version than it expected)."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(ModelogError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(ModelogError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ModelogError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(ModelogError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(ModelogError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(ModelogError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ConcurrencyConflict(Conflict):
    """The stream moved since the caller read it: re-read, re-decide, retry. The versions travel in
    the ErrorInfo metadata, the stream as the ResourceInfo."""

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
            resource=Resource("stream", stream_id, owner=f"log:{log}"),
        )

    @property
    def log(self) -> str:
        return self.metadata.get("log", "")

    @property
    def stream_id(self) -> str:
        return self.metadata.get("stream_id", "")

    @property
    def expected(self) -> int:
        return int(self.metadata.get("expected_version", "0"))

    @property
    def actual(self) -> int:
        return int(self.metadata.get("actual_version", "0"))


class IdempotencyKeyReused(FailedPrecondition):
    """An idempotency key came back with a different command than the one it first named."""

    reason = "IDEMPOTENCY_KEY_REUSED"


BY_CODE: dict[grpc.StatusCode, type[ModelogError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Conflict,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}
"""The class of each status code (every code but OK has one)."""

_NAMED: tuple[type[ModelogError], ...] = (*BY_CODE.values(), ConcurrencyConflict, IdempotencyKeyReused)
BY_REASON: dict[str, type[ModelogError]] = {cls.reason: cls for cls in _NAMED}
"""The class a status names by its ErrorInfo reason, where that is a class of its own."""


def error_for(code: grpc.StatusCode, reason: str = "") -> type[ModelogError]:
    """The class for a status: the one its reason names (when that class has this code), else the
    code's own class."""
    named = BY_REASON.get(reason)
    if named is not None and named.code == code:
        return named
    return BY_CODE.get(code, ModelogError)


__all__ = [
    "TRANSIENT",
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
]
