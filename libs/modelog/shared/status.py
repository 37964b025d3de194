"""The one mapping between errors and gRPC statuses, in each direction.

Server side, `to_status` turns a raised error into a status whose details are `google.rpc` ErrorInfo
(reason, metadata), BadRequest (field violations) and ResourceInfo. Client side, `error_of` turns a
failed call back into the same class with the same message and details, and `from_rpc` is what the
SDK raises: the same, on one line, with what to do when no server answered at all.
"""

from __future__ import annotations

from typing import NamedTuple

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from modelog.shared.errors import FieldViolation, ModelogError, Resource, error_for

DOMAIN = "modelog.dev"
"""The ErrorInfo domain of every error a Modelog server sends."""

UNREACHABLE_HINT = "is `modelog up` running? set MODELOG_URL to reach another server"
"""Said with every failure to reach a server (the CLI says the same)."""


def to_status(err: ModelogError) -> grpc.Status:
    """Server side: the status (code, message, packed details) a handler aborts with."""
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata)
    ]
    if err.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in err.violations
                ]
            )
        )
    if err.resource is not None:
        r = err.resource
        details.append(
            error_details_pb2.ResourceInfo(
                resource_type=r.type, resource_name=r.name, owner=r.owner, description=r.description
            )
        )
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    code = getattr(code_pb2, err.code.name)
    return rpc_status.to_status(status_pb2.Status(code=code, message=err.message, details=packed))


class Details(NamedTuple):
    """The structured details of a failed call; None where the status did not carry that kind."""

    reason: str | None
    metadata: dict[str, str]
    violations: list[FieldViolation] | None
    resource: Resource | None


NO_DETAILS = Details(None, {}, None, None)


def details(exc: grpc.RpcError) -> Details:
    """Client side: the details in a failed call's `grpc-status-details-bin` trailer."""
    try:
        status = rpc_status.from_call(exc)
    except (ValueError, AttributeError):  # details that contradict the status, or no call at all
        status = None
    if status is None:
        return NO_DETAILS
    reason: str | None = None
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] | None = None
    resource: Resource | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            ri = error_details_pb2.ResourceInfo()
            detail.Unpack(ri)
            resource = Resource(ri.resource_type, ri.resource_name, ri.owner, ri.description)
    return Details(reason, metadata, violations, resource)


def _code_and_text(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, grpc.Call | grpc.aio.AioRpcError):
        code, text = exc.code(), exc.details() or ""
    else:
        code, text = grpc.StatusCode.UNKNOWN, ""
    return code, text or str(exc) or code.name


def _rebuild(exc: grpc.RpcError) -> tuple[ModelogError, bool]:
    code, text = _code_and_text(exc)
    d = details(exc)
    err = error_for(code, d.reason or "").rebuilt(
        text, violations=d.violations or (), metadata=d.metadata, reason=d.reason or "", resource=d.resource
    )
    return err, d.reason is not None


def error_of(exc: grpc.RpcError) -> ModelogError:
    """Client side: a failed call (sync or asyncio) as the error class the server raised, with its
    message and details as sent."""
    return _rebuild(exc)[0]


def from_rpc(exc: grpc.RpcError, target: str | None = None, method: str | None = None) -> ModelogError:
    """What the SDK raises for a failed call: `error_of`, the message on one line; `target` (the
    server's address) and `method` sharpen the message of a server that could not be reached or did
    not answer in time. A refusal the server worded carries ErrorInfo and keeps its words."""
    err, worded = _rebuild(exc)
    text = " ".join(err.message.split()) or err.code.name
    where = f" at {target}" if target else ""
    if err.code == grpc.StatusCode.UNAVAILABLE and not worded:
        text = f"cannot reach the Modelog server{where}: {text} ({UNREACHABLE_HINT})"
    elif err.code == grpc.StatusCode.DEADLINE_EXCEEDED and not worded:
        call = f"{method.rsplit('/', 1)[-1]} " if method else ""
        text = f"{call}got no answer from the Modelog server{where} within its deadline ({text})"
    if text != err.message:
        err.message = text
        err.args = (text,)
    return err


__all__ = [
    "DOMAIN",
    "NO_DETAILS",
    "UNREACHABLE_HINT",
    "Details",
    "details",
    "error_of",
    "from_rpc",
    "to_status",
]
