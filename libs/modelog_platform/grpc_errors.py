"""The one place where errors become gRPC statuses with `google.rpc` details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from pydantic import ValidationError

from eventlog.errors import InvalidArgument, ModelogError

DOMAIN = "modelog.dev"


def from_validation_error(exc: ValidationError, prefix: str = "") -> InvalidArgument:
    """Pydantic's errors, rephrased as field violations a person can act on."""
    first = exc.errors()[0]
    name = prefix + ".".join(str(p) for p in first["loc"])
    err = InvalidArgument.field(name or "request", first["msg"])
    return err


def to_status(err: ModelogError) -> grpc.Status:
    details = []
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata)
    details.append(info)
    if err.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in err.violations
                ]
            )
        )
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    code = getattr(code_pb2, err.code.name)
    return rpc_status.to_status(status_pb2.Status(code=code, message=err.message, details=packed))


def status_details(exc: grpc.RpcError) -> dict[str, object]:
    """Client side: decode the structured details of a failed call (used by the CLI and tests)."""
    out: dict[str, object] = {}
    status = rpc_status.from_call(exc)
    if status is None:
        return out
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            out["reason"] = info.reason
            out["metadata"] = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out["field_violations"] = [(v.field, v.description) for v in br.field_violations]
    return out
