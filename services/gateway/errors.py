"""gRPC status codes as HTTP responses: MLflow's error contract on its paths, google.rpc's JSON on ours.

One table per contract, used by every route, so a refusal reads the same whichever endpoint gave it.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from starlette.responses import Response

from eventlog.errors import ModelogError

# MLflow's names and statuses (mlflow/protos/databricks.proto, ERROR_CODE_TO_HTTP_STATUS):
# RESOURCE_ALREADY_EXISTS is a 400 there, and the stock client branches on these names.
MLFLOW: dict[grpc.StatusCode, tuple[str, int]] = {
    grpc.StatusCode.INVALID_ARGUMENT: ("INVALID_PARAMETER_VALUE", 400),
    grpc.StatusCode.FAILED_PRECONDITION: ("INVALID_STATE", 400),
    grpc.StatusCode.OUT_OF_RANGE: ("INVALID_PARAMETER_VALUE", 400),
    grpc.StatusCode.NOT_FOUND: ("RESOURCE_DOES_NOT_EXIST", 404),
    grpc.StatusCode.ALREADY_EXISTS: ("RESOURCE_ALREADY_EXISTS", 400),
    grpc.StatusCode.ABORTED: ("ABORTED", 409),
    grpc.StatusCode.PERMISSION_DENIED: ("PERMISSION_DENIED", 403),
    grpc.StatusCode.UNAUTHENTICATED: ("UNAUTHENTICATED", 401),
    grpc.StatusCode.RESOURCE_EXHAUSTED: ("REQUEST_LIMIT_EXCEEDED", 429),
    grpc.StatusCode.UNAVAILABLE: ("TEMPORARILY_UNAVAILABLE", 503),
    grpc.StatusCode.DEADLINE_EXCEEDED: ("DEADLINE_EXCEEDED", 504),
    grpc.StatusCode.UNIMPLEMENTED: ("ENDPOINT_NOT_FOUND", 404),
    grpc.StatusCode.CANCELLED: ("CANCELLED", 499),
}

# google.api's HTTP mapping of gRPC codes (as grpc-gateway and Google's JSON APIs use it).
HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status, headers=headers, media_type="application/json"
    )


def _extra_headers(err: ModelogError) -> dict[str, str] | None:
    if err.code == grpc.StatusCode.UNAUTHENTICATED:
        return {"WWW-Authenticate": 'Bearer realm="modelog", Basic realm="modelog"'}
    if err.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return {"Retry-After": "60"}
    return None


MLFLOW_NOT_FOUND = {
    "run": "Run with id={} not found",
    "registered_model": "Registered Model with name={} not found",
}
"""MLflow's sentences for a missing resource (its stores' MlflowException texts), which scripts match."""


def mlflow_error(err: ModelogError) -> Response:
    if err.reason == "RUN_DELETED":  # tracking's reason; MLflow's `_validate_run_is_active`
        message = (
            f"The run {err.metadata.get('run_id', '')} must be in the 'active' state. "
            "Current state is deleted."
        )
        return _json({"error_code": "INVALID_PARAMETER_VALUE", "message": message}, 400)
    name, status = MLFLOW.get(err.code, ("INTERNAL_ERROR", 500))
    message = err.message
    said = MLFLOW_NOT_FOUND.get(err.resource.type) if err.resource else None
    if err.code == grpc.StatusCode.NOT_FOUND and said and err.resource:
        message = said.format(err.resource.name)
    return _json({"error_code": name, "message": message}, status, _extra_headers(err))


def api_error(err: ModelogError) -> Response:
    status = HTTP.get(err.code, 500)
    body: dict[str, Any] = {"code": err.code.value[0], "status": err.code.name, "message": err.message}
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": err.reason,
            "domain": "modelog.dev",
            "metadata": err.metadata,
        }
    ]
    fields = [(v.field, v.description) for v in err.violations]
    if fields:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": f, "description": d} for f, d in fields],
            }
        )
    body["details"] = details
    return _json({"error": body}, status, _extra_headers(err))
