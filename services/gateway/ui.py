"""The web UI: the single-page app built from services/gateway/ui/ (Vite, into ui/dist), served at `/`.

Hashed files under /assets/ are cached for a year (a new build has new names); index.html answers
every other page path, so a bookmarked /experiments/42?sort=... opens where it was, and is never
cached. Paths of the APIs are never answered with the page: an unknown API path stays a 404. Every
answer carries a Content-Security-Policy that allows this origin's scripts and styles only, so an
injected value can neither run script nor send data elsewhere. Without a build (no Node.js when the
package was installed) the API works and `/` says how to build the UI.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

DIST = Path(__file__).with_name("ui") / "dist"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
RESERVED = ("/api/", "/ajax-api/", "/auth/")
RESERVED_EXACT = frozenset(
    {"/api", "/ajax-api", "/auth", "/health", "/version", "/get-artifact", "/model-versions/get-artifact"}
)
"""Paths of the APIs and of MLflow's server (mlflow/serverpaths.py), never answered with the page."""
COMPRESSIBLE = frozenset({".js", ".mjs", ".css", ".html", ".svg", ".json", ".map", ".txt"})
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Modelog: the web UI is not built</title></head>
<body>
<h1>The web UI is not built</h1>
<p>This Modelog serves its APIs (MLflow's REST API, <code>/api/modelog/v1/</code>) but has no web UI:
it was installed without Node.js. To build it, install Node.js 20 and npm, then run
<code>make ui</code> in the Modelog checkout (or <code>npm ci &amp;&amp; npm run build</code> in
<code>services/gateway/ui</code>) and reload this page.</p>
<p>Looked for <code>{dist}</code>.</p>
</body></html>
"""


@dataclass(frozen=True)
class _File:
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str
    stamp: tuple[int, int]


class Files:
    """The built files, read once per change on disk (a rebuild is picked up without a restart)."""

    def __init__(self, dist: Path) -> None:
        self.dist = dist
        self._cache: dict[Path, _File] = {}

    @property
    def built(self) -> bool:
        return (self.dist / "index.html").is_file()

    def find(self, relative: str) -> Path | None:
        """A file inside dist named by a URL path, or None (absent, a directory, or outside dist)."""
        if not relative or "\x00" in relative or "\\" in relative:
            return None
        root = self.dist.resolve()
        try:
            path = (root / relative).resolve()
        except (OSError, RuntimeError):
            return None
        return path if path.is_relative_to(root) and path.is_file() else None

    def load(self, path: Path) -> _File:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        got = self._cache.get(path)
        if got is not None and got.stamp == stamp:
            return got
        body = path.read_bytes()
        suffix = path.suffix.lower()
        media = TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        packed = gzip.compress(body, 9, mtime=0) if suffix in COMPRESSIBLE and len(body) > 1024 else None
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        got = self._cache[path] = _File(body, packed, media, etag, stamp)
        return got


def _respond(request: Request, f: _File, cache: str) -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": cache, "ETag": f.etag}
    if f.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if f.etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    body = f.body
    if f.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "").lower():
        body = f.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=f.media_type, headers=headers)


def _plain(status: int, text: str, **extra: str) -> Response:
    return Response(text, status, headers={**SECURITY_HEADERS, **extra}, media_type="text/plain")


def _reserved(path: str) -> bool:
    return path in RESERVED_EXACT or path.startswith(RESERVED)


class _PageRoute(Route):
    """Every path but the APIs': an unknown or wrong-method API call keeps its 404 or 405."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and _reserved(scope["path"]):
            return Match.NONE, {}
        return super().matches(scope)


def routes(dist: Path = DIST) -> list[BaseRoute]:
    """The UI's routes; they go last, after every API route, because the page owns every other path."""
    files = Files(dist)

    async def asset(request: Request) -> Response:
        path = files.find("assets/" + request.path_params["path"])
        if path is None:
            return _plain(404, "Not Found", **{"Cache-Control": REVALIDATE})
        return _respond(request, files.load(path), IMMUTABLE)

    async def page(request: Request) -> Response:
        if _reserved(request.url.path):
            return _plain(404, "Not Found")
        if request.method not in ("GET", "HEAD"):
            return _plain(405, "Method Not Allowed", Allow="GET, HEAD")
        if not files.built:
            text = NOT_BUILT.format(dist=html.escape(str(files.dist)))
            return Response(
                text, 503, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"}, media_type="text/html"
            )
        name = request.path_params["path"]
        top = files.find(name) if name and "/" not in name else None  # favicon.svg, robots.txt
        if top is not None:
            return _respond(request, files.load(top), "public, max-age=3600")
        return _respond(request, files.load(files.dist / "index.html"), REVALIDATE)

    every = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return [
        Route("/assets/{path:path}", asset, methods=["GET", "HEAD"]),
        _PageRoute("/{path:path}", page, methods=every),
    ]
