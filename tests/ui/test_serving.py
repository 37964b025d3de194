"""How the gateway serves the UI's files, checked on the ASGI app itself against a dist of our own
making: caching, the SPA fallback that never covers an API path, the CSP, and the page shown when
the UI was not built."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from modelog_services.gateway import ui

pytestmark = pytest.mark.asyncio

INDEX = b"<!doctype html><html><head><script type=module src=/assets/index-abc123.js></script></head></html>"
SCRIPT = b"console.log('modelog');\n" * 200


async def _api(request: object) -> JSONResponse:
    return JSONResponse({"api": True})


def make_app(dist: Path) -> Starlette:
    api = [
        Route("/api/2.0/mlflow/runs/search", _api, methods=["POST"]),
        Route("/health", _api, methods=["GET"]),
    ]
    return Starlette(routes=[*api, *ui.routes(dist)])


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    d = tmp_path / "dist"
    (d / "assets").mkdir(parents=True)
    (d / "index.html").write_bytes(INDEX)
    (d / "assets" / "index-abc123.js").write_bytes(SCRIPT)
    (d / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "secret.txt").write_text("outside dist")
    return d


async def get(
    app: Starlette, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request through the ASGI app, as uvicorn would make it."""
    sent: list[dict[str, object]] = []
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (k.lower().encode(), v.encode()) for k, v in {"host": "127.0.0.1", **(headers or {})}.items()
        ],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 5000),
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    hdrs = {k.decode().lower(): v.decode() for k, v in start["headers"]}  # type: ignore[attr-defined]
    body = b"".join(m.get("body", b"") for m in sent[1:])  # type: ignore[misc]
    return int(start["status"]), hdrs, body  # type: ignore[call-overload]


def assert_strict_headers(headers: dict[str, str]) -> None:
    csp = headers["content-security-policy"]
    for part in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ):
        assert part in csp
    assert "unsafe" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


async def test_hashed_assets_are_cached_for_a_year_and_gzipped_for_who_accepts_it(dist: Path) -> None:
    app = make_app(dist)
    status, headers, body = await get(app, "/assets/index-abc123.js", headers={"accept-encoding": "gzip, br"})
    assert status == 200 and headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["content-type"].startswith("text/javascript")
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == SCRIPT
    assert_strict_headers(headers)
    status, headers, body = await get(app, "/assets/index-abc123.js")
    assert status == 200 and body == SCRIPT and "content-encoding" not in headers
    status, _, _ = await get(app, "/assets/index-abc123.js", headers={"if-none-match": headers["etag"]})
    assert status == 304


async def test_every_page_path_answers_the_app_which_is_never_cached(dist: Path) -> None:
    app = make_app(dist)
    for path in ("/", "/experiments", "/experiments/42?sort=metrics.acc+DESC&cols=m:acc", "/runs/abc.def"):
        status, headers, body = await get(app, path)
        assert (status, body) == (200, INDEX), path
        assert headers["cache-control"] == "no-cache"
        assert headers["content-type"].startswith("text/html")
        assert_strict_headers(headers)
    status, headers, _ = await get(app, "/favicon.svg")
    assert status == 200 and headers["content-type"] == "image/svg+xml"


async def test_api_paths_are_never_answered_with_the_page(dist: Path) -> None:
    app = make_app(dist)
    for path in (
        "/api/2.0/mlflow/nope",
        "/api/modelog/v1/x/y",
        "/ajax-api/2.0/mlflow/runs/search",
        "/auth/nope",
    ):
        status, _, body = await get(app, path)
        assert status == 404 and body != INDEX, path
    status, _, _ = await get(app, "/api/2.0/mlflow/runs/search")  # a POST route asked with GET
    assert status == 405
    status, _, body = await get(app, "/api/2.0/mlflow/runs/search", method="POST")
    assert (status, body) == (200, b'{"api":true}')
    status, _, body = await get(app, "/health")
    assert (status, body) == (200, b'{"api":true}')


async def test_missing_assets_and_paths_outside_dist_are_404_not_the_page(dist: Path) -> None:
    app = make_app(dist)
    for path in ("/assets/gone-123.js", "/assets/../../secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt"):
        status, headers, body = await get(app, path)
        assert status == 404 and body != INDEX and b"outside" not in body, path
        assert_strict_headers(headers)


async def test_writes_to_a_page_path_are_refused(dist: Path) -> None:
    status, headers, _ = await get(make_app(dist), "/experiments", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


async def test_without_a_build_the_root_says_how_to_build_and_the_api_still_answers(tmp_path: Path) -> None:
    app = make_app(tmp_path / "never-built")
    status, headers, body = await get(app, "/")
    assert status == 503 and b"not built" in body and b"make ui" in body and b"npm ci" in body
    assert_strict_headers(headers)
    status, _, body = await get(app, "/api/2.0/mlflow/runs/search", method="POST")
    assert (status, body) == (200, b'{"api":true}')
