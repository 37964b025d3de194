"""Errors and gRPC statuses on the server: the one mapping (modelog.shared.status, which the SDK
uses for the way back), and pydantic's validation errors as field violations."""

from __future__ import annotations

import grpc
from pydantic import ValidationError

from modelog.shared.errors import InvalidArgument
from modelog.shared.status import DOMAIN, details, to_status


def from_validation_error(exc: ValidationError, prefix: str = "") -> InvalidArgument:
    """Pydantic's errors, rephrased as field violations a person can act on."""
    first = exc.errors()[0]
    name = prefix + ".".join(str(p) for p in first["loc"])
    return InvalidArgument.field(name or "request", first["msg"])


def status_details(exc: grpc.RpcError) -> dict[str, object]:
    """The structured details of a failed call as plain values (for tests and the gateway):
    `reason` and `metadata` (ErrorInfo), `field_violations` [(field, description)] (BadRequest)."""
    d = details(exc)
    out: dict[str, object] = {}
    if d.reason is not None:
        out["reason"] = d.reason
        out["metadata"] = d.metadata
    if d.violations is not None:
        out["field_violations"] = [tuple(v) for v in d.violations]
    return out


__all__ = ["DOMAIN", "from_validation_error", "status_details", "to_status"]
