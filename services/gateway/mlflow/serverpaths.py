"""The MLflow server's own paths outside its REST API: `/version`, and the UI's artifact downloads
`/get-artifact` and `/model-versions/get-artifact`, which the web UI's page must never answer (a client
reading HTML as a version or a file is worse off than with a clear 404)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

MLFLOW_API_VERSION = "3.17.2"
"""The MLflow server version the gateway emulates: the stock client pinned in requirements-mlflow.lock,
which the compatibility suite runs against us (a unit test keeps the two equal). The stock client reads
it from `/version` to decide what the server supports."""

NOT_SERVED = ("/get-artifact", "/model-versions/get-artifact")
"""MLflow's UI download routes: our UI reads files through the proxied-artifacts API instead."""


async def _version(request: Request) -> Response:
    return Response(MLFLOW_API_VERSION, 200, media_type="text/plain")


async def _not_served(request: Request) -> Response:
    body = {
        "error_code": "ENDPOINT_NOT_FOUND",
        "message": f"{request.url.path} is not served here: download files with "
        "/api/2.0/mlflow-artifacts/artifacts/<path> (or the client's download_artifacts)",
    }
    return Response(json.dumps(body), 404, media_type="application/json")


def routes() -> list[BaseRoute]:
    return [
        Route("/version", _version, methods=["GET"]),
        *(Route(path, _not_served, methods=["GET"]) for path in NOT_SERVED),
    ]
