"""The gateway's ASGI app: guards every request, then routes it to a translator.

Starlette because it is a thin, fast router over ASGI (no per-request validation layer of its own:
the proto messages and the services validate), which is all a translator needs.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from eventlog.errors import Unauthenticated
from modelog_services.gateway.session import SESSION
from modelog_services.gateway.upstream import Caller

MIB = 1024 * 1024


@dataclass(frozen=True)
class HttpConfig:
    """What the guard enforces before any route runs."""

    allowed_hosts: tuple[str, ...] = ()
    """Host names accepted besides IP literals and localhost; "*" accepts any (behind a proxy that
    checks). Names not listed are refused, so a DNS-rebinding page cannot reach a local server."""
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 32 * MIB
    """Bodies of API calls; artifact uploads stream and are not limited by this."""
    max_header_bytes: int = 64 * 1024
    streamed_prefixes: tuple[str, ...] = field(default=("/api/2.0/mlflow-artifacts/artifacts/",))


def _host_name(value: str) -> str:
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    if "*" in allowed:
        return True
    name = _host_name(host.strip().lower()).rstrip(".")
    if not name:
        return False
    if name == "localhost" or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _plain(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"error_code": code, "message": message}).encode()


class Guard:
    """Refuses what must never reach a route: unknown Host names, oversized headers and bodies."""

    def __init__(self, app: ASGIApp, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        size = sum(len(k) + len(v) for k, v in headers)
        refusal: tuple[int, bytes] | None = None
        host = next((v.decode("latin-1") for k, v in headers if k == b"host"), "")
        if size > self.config.max_header_bytes:
            refusal = _plain(
                431, "REQUEST_LIMIT_EXCEEDED", f"request headers over {self.config.max_header_bytes} bytes"
            )
        elif not host_allowed(host, self.config.allowed_hosts):
            refusal = _plain(
                421,
                "INVALID_PARAMETER_VALUE",
                f"host {host!r} is not served here; add it to MODELOG_HTTP_ALLOWED_HOSTS to allow it",
            )
        elif not scope["path"].startswith(self.config.streamed_prefixes):
            length = next((v for k, v in headers if k == b"content-length"), None)
            if length is not None and (not length.isdigit() or int(length) > self.config.max_body_bytes):
                refusal = _plain(
                    413, "REQUEST_LIMIT_EXCEEDED", f"request body over {self.config.max_body_bytes} bytes"
                )
            else:
                receive = self._capped(receive)
        if refusal is not None:
            status, body = refusal
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _capped(self, receive: Receive) -> Receive:
        """Chunked bodies have no length up front: count as they arrive."""
        seen = 0
        limit = self.config.max_body_bytes

        async def capped() -> dict[str, object]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return dict(message)

        return capped


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")


def caller(request: Request) -> Caller:
    """The token from `Authorization: Bearer T` (MLFLOW_TRACKING_TOKEN) or basic auth with the token as
    password (MLFLOW_TRACKING_USERNAME/PASSWORD). The services authenticate it."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    token = ""
    if scheme.lower() == "bearer":
        token = value.strip()
    elif scheme.lower() == "basic":
        try:
            _, _, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("malformed basic credentials") from None
    if not token and scheme == "" and SESSION in request.cookies:
        sessions = getattr(request.app.state, "sessions", None)
        if sessions is not None:
            token = sessions.token(request)
    if not token:
        raise Unauthenticated(
            "missing credentials: send 'Authorization: Bearer <token>' (MLFLOW_TRACKING_TOKEN) or basic "
            "auth with the token as password (MLFLOW_TRACKING_PASSWORD)"
        )
    peer = request.client.host if request.client else ""
    return Caller(token, peer, request.headers.get("x-request-id"))


def build_app(routes: Sequence[BaseRoute], config: HttpConfig) -> Starlette:
    middleware = [Middleware(Guard, config=config)]
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["authorization", "content-type", "x-request-id"],
            )
        )
    return Starlette(routes=list(routes), middleware=middleware)
