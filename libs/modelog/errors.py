"""Exceptions the SDK raises: one class per kind of refusal, each with the server's message.

The server's errors are gRPC statuses; the SDK turns them into these so that user code can write
`except modelog.errors.InvalidArgument` instead of inspecting status codes. Every gRPC status code has
its class (as google-api-core's exceptions do), the message is one line, and the structured details a
Modelog server sends (`google.rpc` ErrorInfo and BadRequest) are kept as `reason`, `metadata` and
`field_violations`. The translation happens once, for every call of a `modelog.Connection`
(modelog._client), so no `grpc` exception reaches a user of the SDK.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import grpc
from google.rpc import error_details_pb2

if TYPE_CHECKING:
    from eventlog.errors import ModelogError as DomainError

P = ParamSpec("P")
R = TypeVar("R")

UNREACHABLE_HINT = "is `modelog up` running? set MODELOG_URL to reach another server"
"""Said with every failure to reach a server (the CLI says the same)."""

TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
"""Codes worth retrying with the same idempotency key: the server may not have seen the call."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ModelogError(Exception):
    """Base of every SDK error. `code` is the gRPC status code; `reason`, `metadata` and
    `field_violations` ([(field, description)]) are the server's structured details, when it sent them."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode | None = None,
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        message = _one_line(message) or self.code.name
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.reason = reason or self.code.name
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations)

    @property
    def transient(self) -> bool:
        """True when retrying (with the same idempotency key) may succeed."""
        return self.code in TRANSIENT


class Cancelled(ModelogError):
    code = grpc.StatusCode.CANCELLED


class Unknown(ModelogError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(ModelogError):
    code = grpc.StatusCode.INVALID_ARGUMENT


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


_BY_CODE: dict[grpc.StatusCode, type[ModelogError]] = {
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


def error_for(code: grpc.StatusCode) -> type[ModelogError]:
    return _BY_CODE.get(code, ModelogError)


def _details(exc: grpc.RpcError) -> tuple[str, dict[str, str], list[tuple[str, str]]]:
    """ErrorInfo (reason, metadata) and BadRequest field violations from `grpc-status-details-bin`."""
    from grpc_status import rpc_status

    reason, metadata, violations = "", {}, []
    try:
        status = rpc_status.from_call(exc)
    except (ValueError, AttributeError):  # details that contradict the status, or no call at all
        status = None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            violations = [(v.field, v.description) for v in br.field_violations]
    return reason, metadata, violations


def from_rpc(exc: grpc.RpcError, target: str | None = None, method: str | None = None) -> ModelogError:
    """The SDK error for a failed call; `target` (the server's address) and `method` sharpen the
    message of a server that could not be reached or did not answer in time."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    text = _one_line((exc.details() if isinstance(exc, grpc.Call) else "") or str(exc) or code.name)
    reason, metadata, violations = _details(exc)
    where = f" at {target}" if target else ""
    if code == grpc.StatusCode.UNAVAILABLE and not reason:
        # Not a refusal the server worded (that would carry ErrorInfo): nobody answered.
        text = f"cannot reach the Modelog server{where}: {text} ({UNREACHABLE_HINT})"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED and not reason:
        call = f"{method.rsplit('/', 1)[-1]} " if method else ""
        text = f"{call}got no answer from the Modelog server{where} within its deadline ({text})"
    return error_for(code)(text, code, reason=reason, metadata=metadata, field_violations=violations)


def from_domain(exc: DomainError) -> ModelogError:
    """The SDK error for a server-side domain error raised by code the SDK shares with the server
    (parsing a reference, checking a manifest's paths)."""
    return error_for(exc.code)(
        exc.message,
        exc.code,
        reason=exc.reason,
        metadata=exc.metadata,
        field_violations=[(v.field, v.description) for v in exc.violations],
    )


def translating(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` (shared server code run by the SDK) raising SDK errors instead of the server's."""
    from eventlog.errors import ModelogError as DomainError

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except DomainError as exc:
            raise from_domain(exc) from None

    return run
