"""MLflow's server paths outside the REST API: `/version` names the MLflow the gateway emulates, and
the UI's page never answers them."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from modelog_services.gateway import ui
from modelog_services.gateway.mlflow import serverpaths

LOCK = Path(__file__).resolve().parents[2] / "requirements-mlflow.lock"


def test_the_emulated_mlflow_version_is_the_stock_client_pinned_in_the_lock() -> None:
    pinned = re.search(r"^mlflow==(\S+)$", LOCK.read_text(), re.M)
    assert pinned is not None and pinned.group(1) == serverpaths.MLFLOW_API_VERSION


def request(app: Starlette, method: str, target: str) -> tuple[int, str, bytes]:
    """One ASGI request: status, content type and body."""
    path, _, query = target.partition("?")
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "headers": [], "scheme": "http", "server": ("t", 80),
             "root_path": "", "http_version": "1.1"}  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], headers.get("content-type", ""), body


def test_version_is_plain_text_and_the_ui_download_routes_are_json_404s(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>ui</title>")
    app = Starlette(routes=[*serverpaths.routes(), *ui.routes(tmp_path)])
    status, kind, body = request(app, "GET", "/version")
    assert (status, body.decode()) == (200, serverpaths.MLFLOW_API_VERSION) and kind.startswith("text/plain")
    for path in ("/get-artifact?path=x&run_uuid=r", "/model-versions/get-artifact?path=x&name=m&version=1"):
        status, kind, body = request(app, "GET", path)
        assert status == 404 and json.loads(body)["error_code"] == "ENDPOINT_NOT_FOUND", path
    for path in ("/version", "/get-artifact"):  # another method: not the page either
        assert "text/html" not in request(app, "POST", path)[1], path
    assert request(app, "GET", "/experiments/1")[1].startswith("text/html")
