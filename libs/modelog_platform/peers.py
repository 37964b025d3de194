"""Other services as a service sees them: through their gRPC APIs, never their tables, even in one
process (design.md: a service calls the other's API).

Where they are: MODELOG_PEERS names a service's address (one process per service); otherwise the
address the process's log reader uses (MODELOG_URL, or the process's own address once `modelog up` /
`modelog serve` started its server), then `platform.address`, then MODELOG_URL / MODELOG_ADDR. Calls
carry the platform's internal token; a peer's refusal becomes the caller's domain error, naming what
was checked.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from eventlog import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from eventlog.sources import GrpcLogReader, parse_routes

if TYPE_CHECKING:
    from modelog_platform.app import Platform

TIMEOUT_S = 10.0


class PeerClient:
    """Channels to peer services and one call helper; each service subclasses it with its calls."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._token: str | None = None
        self._token_lock = asyncio.Lock()
        self._channels: dict[str, grpc.aio.Channel] = {}

    def target(self, service: str) -> str:
        settings = self.platform.settings
        routes = parse_routes(settings.peers) if settings.peers else {}
        if service in routes:
            return routes[service]
        reader = self.platform.reader
        if isinstance(reader, GrpcLogReader):
            return reader.routes.get(service, reader.target)
        own = getattr(self.platform, "address", None)
        if isinstance(own, str) and own:
            return own
        if settings.url:
            return settings.url
        if not settings.addr.endswith(":0"):
            return settings.addr
        raise Unavailable(
            f"this process does not know where the {service} service is: "
            f"set MODELOG_PEERS={service}=host:port"
        )

    async def _metadata(self) -> list[tuple[str, str]]:
        if self._token is None:
            async with self._token_lock:
                if self._token is None:
                    self._token = await self.platform.ensure_internal_token()
        return [("authorization", f"Bearer {self._token}")]

    def _channel(self, service: str) -> grpc.aio.Channel:
        target = self.target(service)
        if target not in self._channels:
            reader = self.platform.reader  # it knows how this process connects (TLS or not)
            opened = reader.channel(target) if isinstance(reader, GrpcLogReader) else None
            self._channels[target] = opened or grpc.aio.insecure_channel(target)
        return self._channels[target]

    async def _call(self, service: str, what: str, field: str, call: Any, request: Any) -> Any:
        try:
            return await call(request, metadata=await self._metadata(), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            refuse(service, what, field, exc, self.target(service))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


def refuse(service: str, what: str, field: str, exc: grpc.aio.AioRpcError, target: str) -> NoReturn:
    code, details = exc.code(), exc.details() or exc.code().name
    if code == grpc.StatusCode.NOT_FOUND:
        raise NotFound(f"{what} does not exist (the {service} service says: {details})")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        raise InvalidArgument.field(field, f"the {service} service refused {what}: {details}")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        raise FailedPrecondition(f"the {service} service refused {what}: {details}")
    raise Unavailable(
        f"could not check {what} with the {service} service at {target} ({code.name}: {details}); "
        "nothing was written, retry later"
    )
