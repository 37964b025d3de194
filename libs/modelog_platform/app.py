"""The platform as one object: a pool, a store per hosted log, tokens, and the gRPC server over them."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from eventlog import EventStore, Metadata, create_log
from modelog._gen.eventlog.v1 import eventlog_pb2, eventlog_pb2_grpc
from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog_platform import identity
from modelog_platform.eventlog_api import EventLogServicer
from modelog_platform.identity_api import IdentityServicer
from modelog_platform.interceptor import PlatformInterceptor
from modelog_platform.settings import PLATFORM_LOGS, SERVICES, Settings

log = logging.getLogger("modelog.platform")


class StartupError(RuntimeError):
    """A problem a person can fix (port taken, server unreachable); printed without a traceback."""


async def connect(dsn: str, size: int) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=size, command_timeout=60)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise StartupError(f"cannot reach PostgreSQL at {dsn}: {exc}") from None
    assert pool is not None
    return pool


@dataclass
class Platform:
    settings: Settings
    pool: asyncpg.Pool
    stores: dict[str, EventStore] = field(default_factory=dict)
    authority: identity.TokenAuthority | None = None

    @classmethod
    async def open(cls, settings: Settings, dsn: str, services: Iterable[str] = SERVICES) -> Platform:
        pool = await connect(dsn, settings.pool_size)
        platform = cls(settings, pool)
        async with pool.acquire() as conn:
            for name in (*services, *PLATFORM_LOGS):
                await create_log(conn, name)
            await conn.execute(identity.VIEW_DDL)
        for name in services:
            platform.stores[name] = EventStore(pool, name, group_commit_max=settings.group_commit_max)
        id_store = EventStore(
            pool,
            identity.LOG,
            group_commit_max=settings.group_commit_max,
            inline_hooks=[identity.project_tokens],
        )
        platform.stores[identity.LOG] = id_store
        platform.authority = identity.TokenAuthority(id_store)
        return platform

    async def ensure_admin_token(self) -> Path:
        """First start: create the `admin` token and write its secret once, mode 0600."""
        assert self.authority is not None
        path = self.settings.admin_token_path
        if await self.authority.has_admin():
            if not path.exists():
                log.warning(
                    "the admin token exists but %s is missing; create another with "
                    "`modelog token create` using a token you hold",
                    path,
                )
            return path
        secret, _ = await self.authority.create("admin", ["admin"], Metadata(actor="system"))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
        os.chmod(path, 0o600)
        return path

    async def close(self) -> None:
        for store in self.stores.values():
            await store.close()
        await self.pool.close()


@dataclass
class Server:
    server: grpc.aio.Server
    health: HealthServicer
    port: int

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_server(platform: Platform, addr: str) -> Server:
    assert platform.authority is not None
    server = grpc.aio.server(
        interceptors=[PlatformInterceptor(platform.authority)],
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024), ("grpc.so_reuseport", 0)],
    )
    eventlog_pb2_grpc.add_EventLogServicer_to_server(EventLogServicer(platform.stores), server)
    identity_pb2_grpc.add_IdentityServicer_to_server(IdentityServicer(platform.authority), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [
        eventlog_pb2.DESCRIPTOR.services_by_name["EventLog"].full_name,
        identity_pb2.DESCRIPTOR.services_by_name["Identity"].full_name,
    ]
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    try:
        port = server.add_insecure_port(addr)
    except RuntimeError:
        port = 0
    if port == 0:
        raise StartupError(
            f"cannot listen on {addr}: the address is in use or invalid "
            "(set MODELOG_ADDR to another host:port)"
        )
    await server.start()
    for name in ("", *names):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Server(server, health, port)
