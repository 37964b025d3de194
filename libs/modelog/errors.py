"""Exceptions the SDK raises: one class per kind of refusal, each with the server's message.

The server's errors are gRPC statuses; the SDK turns them into these so that user code can write
`except modelog.errors.InvalidArgument` instead of inspecting status codes.
"""

from __future__ import annotations

import grpc


class ModelogError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(ModelogError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ModelogError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ModelogError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ModelogError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Conflict(ModelogError):
    code = grpc.StatusCode.ABORTED


class PermissionDenied(ModelogError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ModelogError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(ModelogError):
    code = grpc.StatusCode.UNAVAILABLE


_BY_CODE: dict[grpc.StatusCode, type[ModelogError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Conflict,
        PermissionDenied,
        Unauthenticated,
        Unavailable,
    )
}


def from_rpc(exc: grpc.RpcError) -> ModelogError:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    cls = _BY_CODE.get(code, ModelogError)
    return cls(details or code.name, code)
