"""The gateway as the platform runs it: the app with every translator, served on MODELOG_HTTP_ADDR."""

from __future__ import annotations

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from modelog.shared.settings import Settings
from modelog_platform.tls import TlsFiles
from modelog_services.gateway import jsonapi, session, ui
from modelog_services.gateway.http import HttpConfig, build_app
from modelog_services.gateway.inprocess import LocalHandlers
from modelog_services.gateway.mlflow import artifacts, models, registry, tracking
from modelog_services.gateway.server import HttpServer, start_http
from modelog_services.gateway.session import Sessions
from modelog_services.gateway.upstream import Upstream


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip().lower() for v in value.split(",") if v.strip())


def config(settings: Settings) -> HttpConfig:
    return HttpConfig(
        allowed_hosts=_csv(settings.http_allowed_hosts),
        cors_origins=tuple(v.strip() for v in settings.http_cors_origins.split(",") if v.strip()),
        max_body_bytes=settings.http_max_body_bytes,
    )


async def _health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "SERVING"})


def app(upstream: Upstream, settings: Settings) -> Starlette:
    routes: list[BaseRoute] = [Route("/health", _health, methods=["GET"])]
    routes.extend(tracking.routes(upstream, models.links(upstream)))
    routes.extend(registry.routes(upstream, models.lookup(upstream)))
    for part in (models, artifacts, jsonapi):
        routes.extend(part.routes(upstream))
    sessions = Sessions.at(settings.home)
    routes.extend(session.routes(upstream, sessions))
    routes.extend(ui.routes())  # last: the page owns every path the APIs do not
    built = build_app(routes, config(settings))
    built.state.sessions = sessions
    return built


def enabled(settings: Settings) -> bool:
    return settings.http_addr.strip().lower() not in ("", "off", "none", "0")


class Gateway:
    """The HTTP server and its channel to the services, started and stopped together."""

    def __init__(self, upstream: Upstream, server: HttpServer) -> None:
        self.upstream = upstream
        self.server = server

    @classmethod
    async def start(
        cls,
        settings: Settings,
        target: str,
        credentials: grpc.ChannelCredentials | None,
        tls: TlsFiles | None,
        local: LocalHandlers | None = None,
    ) -> Gateway:
        upstream = Upstream(target, credentials, local)
        try:
            server = await start_http(app(upstream, settings), settings.http_addr, tls, settings.reuse_port)
        except BaseException:
            await upstream.close()
            raise
        return cls(upstream, server)

    @property
    def url(self) -> str:
        return self.server.url

    async def stop(self) -> None:
        await self.server.stop()
        await self.upstream.close()
