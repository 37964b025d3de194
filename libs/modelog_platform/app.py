"""The platform in one process: a pool, the hosted logs, tokens, relays, projections and the gRPC server.

`modelog up` hosts every service; `modelog serve <service>` hosts one. The code is the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from eventlog import AlreadyExists, EventStore, Metadata, create_log
from eventlog.projection import Projection, inline
from eventlog.relay import Relay, relay_ddl
from eventlog.runner import ProjectionRunner
from eventlog.sources import GrpcLogReader, LogReader
from modelog._gen.admin.v1 import admin_pb2, admin_pb2_grpc
from modelog._gen.eventlog.v1 import eventlog_pb2, eventlog_pb2_grpc
from modelog._gen.identity.v1 import access_pb2, access_pb2_grpc, identity_pb2, identity_pb2_grpc
from modelog.shared.settings import SERVICES, Settings, redact_dsn
from modelog_platform import identity, tls
from modelog_platform.access import AccessControl, AccessView
from modelog_platform.authz import NEW_IN, Authorizer, Place, Resolver
from modelog_platform.grpc_std import Health, enable_reflection
from modelog_platform.service import ServiceSpec
from modelog_services import spec as service_spec

if TYPE_CHECKING:
    from modelog_services.gateway.inprocess import LocalHandlers

log = logging.getLogger("modelog.platform")

MAX_RECEIVE_BYTES = 64 << 20
"""The largest request message the server reads; a larger one is RESOURCE_EXHAUSTED before any handler."""


def _methods(services: Iterable[str]) -> list[str]:
    """Every method of the named gRPC services, as `/package.Service/Method`."""
    pool = descriptor_pool.Default()
    return [f"/{name}/{m.name}" for name in services for m in pool.FindServiceByName(name).methods]


class StartupError(RuntimeError):
    """A problem a person can fix (port taken, server unreachable); printed without a traceback."""


_SESSION_STATE: set[int] = set()


def keeps_session_state(conn: asyncpg.Connection) -> None:
    """Mark a pooled connection that holds session-level state (an advisory lock taken outside a
    transaction): it gets asyncpg's full reset when it goes back to the pool."""
    _SESSION_STATE.add(id(conn))


async def _reset(conn: asyncpg.Connection) -> None:
    """asyncpg's default reset is one more round trip on every release (unlock all advisory locks,
    CLOSE ALL, UNLISTEN *, RESET ALL): a read paid two queries for one. Nothing here leaves session
    state on a pooled connection (locks are transaction-scoped, no SET without LOCAL, the LISTEN
    connection is kept apart), except what `keeps_session_state` marks: those, and a connection left
    in a transaction, get the full reset."""
    if conn.is_in_transaction() or id(conn) in _SESSION_STATE:
        _SESSION_STATE.discard(id(conn))
        await conn.reset()


async def connect(dsn: str, size: int) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=size, command_timeout=60, reset=_reset)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise StartupError(f"cannot reach PostgreSQL at {redact_dsn(dsn)}: {exc}") from None
    assert pool is not None
    return pool


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.chmod(path, 0o600)


@dataclass
class Platform:
    settings: Settings
    pool: asyncpg.Pool
    specs: dict[str, ServiceSpec] = field(default_factory=dict)
    stores: dict[str, EventStore] = field(default_factory=dict)
    authority: identity.TokenAuthority | None = None
    access: AccessControl | None = None
    relays: list[Relay] = field(default_factory=list)
    runners: dict[str, ProjectionRunner] = field(default_factory=dict)
    reader: LogReader | None = None
    address: str | None = None
    """Where this process's own gRPC server listens (set by start_server), for calls to itself."""
    on_close: list[Callable[[], None]] = field(default_factory=list)
    """What services set up besides their stores (the artifacts service's ingest workers)."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, settings: Settings, dsn: str, services: Iterable[str] = SERVICES) -> Platform:
        pool = await connect(dsn, settings.pool_size)
        platform = cls(settings, pool, specs={name: service_spec(name) for name in services})
        for name in (*platform.specs, identity.LOG):
            store = EventStore(pool, name, group_commit_max=settings.group_commit_max)
            platform.stores[name] = store
        inline_views: dict[str, list[Projection]] = {identity.LOG: [identity.TokensView(), AccessView()]}
        for name, spec in platform.specs.items():
            inline_views.setdefault(name, []).extend(spec.inline_projections)
        async with pool.acquire() as conn:
            for name, store in platform.stores.items():
                await create_log(conn, name)
                await conn.execute(relay_ddl(name))
                for view in inline_views.get(name, []):
                    await view.ensure(conn)
                    store.inline_hooks.append(inline(view, store))
        platform.authority = identity.TokenAuthority(platform.stores[identity.LOG])
        platform.access = AccessControl(platform.stores[identity.LOG])
        return platform

    def async_projections(self) -> set[str]:
        """Names of the projections fed by Kafka (whether or not this process runs them)."""
        return {p.name for spec in self.specs.values() for p in spec.projections}

    def projections(self) -> list[Projection]:
        inline_views: list[Projection] = [identity.TokensView(), AccessView()]
        for spec in self.specs.values():
            inline_views.extend(spec.inline_projections)
        return [*inline_views, *(p for spec in self.specs.values() for p in spec.projections)]

    async def ensure_admin_token(self) -> Path:
        """First start: create the `admin` token and write its secret once, mode 0600."""
        return await self._ensure_token("admin", self.settings.admin_token_path)

    async def ensure_internal_token(self) -> str:
        """The token services use to call each other (gap healing reads other services' logs).

        Reuses MODELOG_HOME/internal-token while the database still knows it; otherwise (a new home,
        a new database) issues a fresh one, so a process never starts unable to heal.
        """
        assert self.authority is not None
        path = self.settings.home / "internal-token"
        if await asyncio.to_thread(path.exists):
            secret = (await asyncio.to_thread(path.read_text)).strip()
            if await self.authority.resolve(secret) is not None:
                return secret
        secret, _ = await self.authority.create(
            f"modelog-internal-{secrets.token_hex(3)}", ["admin"], Metadata(actor="system")
        )
        _write_secret(path, secret)
        return secret

    async def _ensure_token(self, name: str, path: Path) -> Path:
        assert self.authority is not None
        if await self.authority.exists(name):
            if not await asyncio.to_thread(path.exists):
                log.warning(
                    "token %r exists but %s is missing; create another with `modelog token create`",
                    name,
                    path,
                )
            return path
        try:
            secret, _ = await self.authority.create(name, ["admin"], Metadata(actor="system"))
        except AlreadyExists:
            # Another process of this installation won the race; it is writing the file now.
            for _ in range(200):
                if await asyncio.to_thread(path.exists):
                    return path
                await asyncio.sleep(0.05)
            raise StartupError(
                f"token {name!r} was created by another process but {path} never appeared"
            ) from None
        _write_secret(path, secret)
        return path

    def authorizer(self) -> Authorizer:
        """The permission table, with the resolvers of the resources this process's services own."""
        from modelog_services.permissions import rules

        assert self.access is not None
        access = self.access

        async def projects(names: list[str]) -> dict[str, Place]:
            return {n: Place(n) for n in names if await access.project_exists(n)}

        resolvers: dict[str, Resolver] = {"project": projects, NEW_IN: projects}
        for spec in self.specs.values():
            if spec.resolvers is not None:
                resolvers.update(spec.resolvers(self))
        return Authorizer(rules(), resolvers, access.grants_for)

    def start_bus(self, bootstrap: str | None, reader: LogReader, *, background: bool = True) -> None:
        """Relays for the hosted logs, runners for the hosted async projections, all as tasks.

        `background=False` (the serving workers of `modelog up --workers`, whose bus worker runs
        these): only the reader, so no process polls the broker for nothing."""
        self.reader = reader
        if not background:
            return
        if bootstrap:
            for store in self.stores.values():
                relay = Relay(
                    store,
                    bootstrap,
                    topic_prefix=self.settings.topic_prefix,
                    max_message_bytes=self.settings.kafka_max_message_bytes,
                )
                self.relays.append(relay)
                self._tasks.append(asyncio.create_task(relay.run(), name=f"relay-{store.log}"))
        for spec in self.specs.values():
            for projection in spec.projections:
                runner = ProjectionRunner(
                    self.pool, projection, reader, bootstrap, topic_prefix=self.settings.topic_prefix
                )
                self.runners[projection.name] = runner
                self._tasks.append(asyncio.create_task(runner.run(), name=f"projection-{projection.name}"))
            for job in spec.tasks:
                self._tasks.append(asyncio.create_task(job(self), name=f"{spec.name}-{job.__name__}"))

    async def stop_bus(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=5.0)
            for task in stuck:
                log.warning("%s did not stop within 5 s", task.get_name())
        self._tasks.clear()

    async def close(self) -> None:
        await self.stop_bus()
        for fn in self.on_close:
            await asyncio.to_thread(fn)
        if isinstance(self.reader, GrpcLogReader):
            await self.reader.close()
        for store in self.stores.values():
            await store.close()
        await self.pool.close()


@dataclass
class Server:
    server: grpc.aio.Server
    health: HealthServicer
    port: int
    tls: tls.TlsFiles | None = None
    """The certificate served (and its CA, when it is the local one); None: plaintext."""
    local: LocalHandlers | None = None
    """Its servicers' handlers, for the HTTP gateway in this process (gateway/inprocess.py)."""

    def client_credentials(self, settings: Settings) -> grpc.ChannelCredentials | None:
        """How this process's own clients (the log reader, peer calls) connect: trusting
        MODELOG_CA_FILE, else the local CA, else the system's roots; presenting our certificate when
        peers require client certificates. None (plaintext) when neither side asks for TLS."""
        if self.tls is None and settings.ca_file is None:
            return None
        ca = settings.ca_file or (self.tls.ca if self.tls else None)
        mine = self.tls if settings.tls_client_ca and self.tls else None
        return tls.channel_credentials(ca, *((mine.cert, mine.key) if mine else ()))

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_server(platform: Platform, addr: str) -> Server:
    from modelog_platform.access_api import AccessServicer
    from modelog_platform.admin_api import AdminServicer
    from modelog_platform.eventlog_api import EventLogServicer
    from modelog_platform.identity_api import IdentityServicer
    from modelog_platform.interceptor import PlatformInterceptor
    from modelog_services.gateway.inprocess import LocalHandlers

    assert platform.authority is not None
    authorizer = platform.authorizer()
    interceptors = [PlatformInterceptor(platform.authority, authorizer)]
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.so_reuseport", int(platform.settings.reuse_port)),
        ],
    )
    # The gateway beside us calls these handlers in-process (the same interceptor, no loopback hop).
    local = LocalHandlers()
    local.capture(server, interceptors)
    eventlog_pb2_grpc.add_EventLogServicer_to_server(EventLogServicer(platform.stores), server)
    identity_pb2_grpc.add_IdentityServicer_to_server(IdentityServicer(platform.authority), server)
    assert platform.access is not None
    access_pb2_grpc.add_AccessServicer_to_server(AccessServicer(platform.access, platform.authority), server)
    admin_pb2_grpc.add_AdminServicer_to_server(AdminServicer(platform), server)
    names = [
        eventlog_pb2.DESCRIPTOR.services_by_name["EventLog"].full_name,
        identity_pb2.DESCRIPTOR.services_by_name["Identity"].full_name,
        access_pb2.DESCRIPTOR.services_by_name["Access"].full_name,
        admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
    ]
    for spec in platform.specs.values():
        if spec.register is not None:
            names.extend(spec.register(server, platform))
    missing = authorizer.uncovered(_methods(names))
    if missing:
        raise StartupError(
            f"no rule in the permission table (services/permissions.py) for {', '.join(missing)}: "
            "every method of a served API must name what it needs"
        )
    health = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    enable_reflection([*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server)
    settings = platform.settings
    files: tls.TlsFiles | None = None
    try:
        if settings.tls_cert or settings.tls_key:
            if not (settings.tls_cert and settings.tls_key):
                raise tls.TlsError("MODELOG_TLS_CERT and MODELOG_TLS_KEY go together: set both")
            files = tls.TlsFiles(settings.tls_cert, settings.tls_key, settings.ca_file)
        elif settings.tls:
            files = await asyncio.to_thread(tls.ensure_local, settings.home, tls.server_hosts(addr))
        if settings.tls_client_ca and files is None:
            raise tls.TlsError("MODELOG_TLS_CLIENT_CA needs TLS: add --tls or MODELOG_TLS_CERT/KEY")
        creds = tls.server_credentials(files, settings.tls_client_ca) if files else None
    except tls.TlsError as exc:
        raise StartupError(str(exc)) from None
    try:
        port = server.add_secure_port(addr, creds) if creds else server.add_insecure_port(addr)
    except RuntimeError:
        port = 0
    if port == 0:
        raise StartupError(
            f"cannot listen on {addr}: the address is in use or invalid "
            "(set MODELOG_ADDR to another host:port)"
        )
    await server.start()
    platform.address = f"127.0.0.1:{port}"
    for name in ("", *names):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Server(server, health, port, files, local)
