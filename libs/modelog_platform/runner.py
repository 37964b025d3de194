"""`modelog up` (every service, embedded PostgreSQL and broker, supervised) and `modelog serve` (one
service per process, external servers)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import grpc

from eventlog.sources import GrpcLogReader, parse_routes
from modelog.shared.settings import SERVICES, Settings, redact_dsn
from modelog_platform import tls as tls_mod
from modelog_platform.app import Platform, Server, StartupError, start_server
from modelog_platform.embedded import EmbeddedBroker, EmbeddedError, EmbeddedPostgres, port_in_use
from modelog_platform.gcpauses import Pauses, settle
from modelog_platform.telemetry import TelemetryError, setup_logging, setup_metrics, setup_tracing

if TYPE_CHECKING:
    from modelog_platform.tls import TlsFiles
    from modelog_services.gateway.inprocess import LocalHandlers
    from modelog_services.gateway.service import Gateway

log = logging.getLogger("modelog.up")


class Part(Protocol):
    def is_running(self) -> bool: ...

    def start(self, timeout: float = ...) -> str: ...


@dataclass
class Supervisor:
    """Restarts an embedded part that dies, with backoff, so the platform converges without a hand."""

    parts: dict[str, Part] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    async def watch(self, interval: float = 0.5) -> None:
        backoff = dict.fromkeys(self.parts, 0.5)
        while True:
            await asyncio.sleep(interval)
            for name, part in self.parts.items():
                if part.is_running():
                    continue
                log.warning("%s exited; restarting in %.1fs", name, backoff[name])
                await asyncio.sleep(backoff[name])
                try:
                    # Started from the event loop's thread, which is the main thread: the child's
                    # death signal stays tied to this process (see embedded.py).
                    part.start()
                except EmbeddedError as exc:
                    backoff[name] = min(backoff[name] * 2, 30.0)
                    log.error("restarting %s failed: %s", name, exc)
                    continue
                backoff[name] = 0.5
                self.restarts[name] = self.restarts.get(name, 0) + 1
                print(f"modelog: restarted {name}", flush=True)


def _stop_on_signals() -> asyncio.Event:
    """Set by SIGINT or SIGTERM: every serving loop here stops the same way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _check_home(settings: Settings) -> None:
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".probe-"):
            pass
    except OSError as exc:
        raise StartupError(
            f"MODELOG_HOME={home} is not writable ({exc.strerror}); "
            "point MODELOG_HOME at a directory you can write"
        ) from None


def _check_addr_free(addr: str, variable: str = "MODELOG_ADDR") -> None:
    host, _, port = addr.rpartition(":")
    if not port.isdigit():
        raise StartupError(f"{variable}={addr!r} is not host:port")
    if port_in_use(host.strip("[]"), int(port)):
        raise StartupError(
            f"cannot listen on {addr}: address already in use (is another `modelog up` running? "
            f"set {variable} to use another port)"
        )


async def _check_kafka(bootstrap: str, wait_s: float = 10.0) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(wait_s * 1000))
    try:
        await asyncio.wait_for(client.start(), wait_s)
    except Exception as exc:  # noqa: BLE001 - any failure here means "unreachable"
        raise StartupError(f"cannot reach Kafka at {bootstrap}: {exc or type(exc).__name__}") from None
    finally:
        with suppress(Exception):
            await client.close()


async def serve(
    settings: Settings,
    dsn: str,
    bootstrap: str,
    services: Sequence[str] = SERVICES,
    supervisor: Supervisor | None = None,
    http: bool = True,
    bus: bool = True,
) -> None:
    """Serve until SIGINT/SIGTERM; `bus=False` leaves relays, async projections and background jobs
    to another process (the bus worker of `modelog up --workers`)."""
    stop = _stop_on_signals()
    if settings.kafka_bootstrap:
        await _check_kafka(bootstrap)
    try:
        routes = parse_routes(settings.peers)
    except ValueError as exc:
        raise StartupError(f"MODELOG_PEERS: {exc}") from None
    platform = await Platform.open(settings, dsn, services)
    watcher = None
    gateway = None
    try:
        token_path = await platform.ensure_admin_token()
        server = await start_server(platform, settings.addr)
        own = f"127.0.0.1:{server.port}"
        internal = await platform.ensure_internal_token()
        creds = server.client_credentials(settings)
        reader = GrpcLogReader(settings.url or own, internal, routes, creds)
        platform.start_bus(bootstrap, reader, background=bus)
        if supervisor is not None:
            watcher = asyncio.create_task(supervisor.watch())
        # One service per process (`modelog serve X`) leaves HTTP to `modelog serve http`.
        gateway = await _start_gateway(settings, own, creds, server.tls, server.local) if http else None
        frozen = settle()
        pauses = Pauses()
        print(
            f"modelog ready on {settings.addr}{_tls_note(server)} | "
            f"http: {gateway.url if gateway else 'off'} | "
            f"services: {','.join(services)} | "
            f"admin token: {token_path} | "
            f"postgres: {redact_dsn(dsn)} | kafka: {bootstrap} | home: {settings.home}",
            flush=True,
        )
        await stop.wait()
        pauses.close()
        print(f"modelog stopping | {pauses.summary()} | {frozen:,} startup objects frozen", flush=True)
        if gateway is not None:
            await gateway.stop()
            gateway = None
        await platform.stop_bus()
        await server.stop()
    finally:
        if watcher is not None:
            watcher.cancel()
        if gateway is not None:
            await gateway.stop()
        await platform.close()


async def _start_gateway(
    settings: Settings,
    target: str,
    creds: grpc.ChannelCredentials | None,
    tls: TlsFiles | None,
    local: LocalHandlers | None = None,
) -> Gateway | None:
    """The HTTP surface, translating to the gRPC services at `target` (ours, or MODELOG_URL's)."""
    from modelog_services.gateway.server import HttpAddressError
    from modelog_services.gateway.service import Gateway, enabled

    if not enabled(settings):
        return None
    try:
        return await Gateway.start(settings, target, creds, tls, local)
    except HttpAddressError as exc:
        raise StartupError(str(exc)) from None


async def serve_gateway(settings: Settings) -> None:
    """`modelog serve http`: the HTTP surface alone, in front of the services at MODELOG_URL."""
    stop = _stop_on_signals()
    if not settings.url:
        raise StartupError("`modelog serve http` needs MODELOG_URL: where the gRPC services are")
    creds = tls_mod.channel_credentials(settings.ca_file) if settings.ca_file else None
    files = (
        tls_mod.TlsFiles(settings.tls_cert, settings.tls_key, settings.ca_file)
        if settings.tls_cert and settings.tls_key
        else None
    )
    gateway = await _start_gateway(settings, settings.url, creds, files)
    if gateway is None:
        raise StartupError("MODELOG_HTTP_ADDR is off: nothing to serve")
    settle()
    pauses = Pauses()
    print(f"modelog http ready on {gateway.url} | services: {settings.url}", flush=True)
    try:
        await stop.wait()
    finally:
        pauses.close()
        print(f"modelog http stopping | {pauses.summary()}", flush=True)
        await gateway.stop()


def _tls_note(server: Server) -> str:
    if server.tls is None:
        return ""
    if server.tls.ca is None:
        return " (TLS)"
    return f" (TLS; clients trust MODELOG_CA_FILE={server.tls.ca})"


def _configure(settings: Settings) -> None:
    setup_logging(settings.log_level, settings.log_format)
    try:
        setup_tracing("modelog")
        setup_metrics("modelog")
    except TelemetryError as exc:
        raise StartupError(str(exc)) from None


def _record_bootstrap(settings: Settings, bootstrap: str, stack: ExitStack) -> None:
    """Tell the CLI where the broker is (`events replay --to-topic`), for as long as we run: a restarted
    embedded broker keeps its port, so the file stays true until we stop."""
    path = settings.bootstrap_path
    partial = path.with_name(path.name + ".partial")
    partial.write_text(bootstrap + "\n")
    partial.replace(path)

    def forget() -> None:
        with suppress(OSError):
            if path.read_text().strip() == bootstrap:
                path.unlink()

    stack.callback(forget)


def up(settings: Settings | None = None) -> int:
    """Run every service until SIGINT/SIGTERM. Embedded parts start in the main thread so their death
    signal (PR_SET_PDEATHSIG) is tied to this process, not to a worker thread."""
    settings = settings or Settings()
    supervisor = Supervisor()
    with ExitStack() as stack:
        try:
            _configure(settings)
            _check_home(settings)
            _check_addr_free(settings.addr)
            if settings.http_addr.strip().lower() not in ("", "off", "none", "0"):
                _check_addr_free(settings.http_addr, "MODELOG_HTTP_ADDR")
            dsn = settings.pg_dsn
            if not dsn:
                pg = EmbeddedPostgres(settings.pgdata, log_file=settings.log_dir / "postgres.log")
                dsn = pg.start()
                stack.callback(pg.stop)
                supervisor.parts["postgres"] = pg
            bootstrap = settings.kafka_bootstrap
            if not bootstrap:
                broker = EmbeddedBroker(log_file=settings.log_dir / "broker.log")
                bootstrap = broker.start()
                stack.callback(broker.stop)
                supervisor.parts["broker"] = broker
            _record_bootstrap(settings, bootstrap, stack)
            if settings.workers > 1:
                _serve_workers(settings, dsn, bootstrap, supervisor, embedded_pg=not settings.pg_dsn)
            else:
                asyncio.run(serve(settings, dsn, bootstrap, supervisor=supervisor))
        except (StartupError, EmbeddedError) as exc:
            print(f"modelog: {exc}", file=sys.stderr, flush=True)
            return 2
        except KeyboardInterrupt:
            pass
    print("modelog stopped", flush=True)
    return 0


def _serve_workers(
    settings: Settings, dsn: str, bootstrap: str, supervisor: Supervisor, *, embedded_pg: bool
) -> None:
    """`up --workers N`: the services in N processes; this one supervises them and the embedded parts."""
    from modelog_platform import workers

    fleet = workers.start_workers(settings, workers.worker_env(settings, dsn, bootstrap, embedded_pg))
    try:
        for worker in fleet:
            supervisor.parts[str(worker)] = worker
        print(workers.ready_line(fleet), flush=True)
        asyncio.run(_supervise(supervisor))
        print("modelog stopping", flush=True)
    finally:
        workers.stop_workers(fleet)


async def _supervise(supervisor: Supervisor) -> None:
    stop = _stop_on_signals()
    watcher = asyncio.create_task(supervisor.watch())
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher


def serve_one(service: str, settings: Settings | None = None) -> int:
    """One service in this process (horizontal scaling): external PostgreSQL and Kafka required."""
    settings = settings or Settings()
    if service == "http":
        try:
            _configure(settings)
            asyncio.run(serve_gateway(settings))
        except StartupError as exc:
            print(f"modelog: {exc}", file=sys.stderr, flush=True)
            return 2
        except KeyboardInterrupt:
            pass
        return 0
    if service not in SERVICES:
        print(
            f"modelog: unknown service {service!r}; services are: {', '.join(SERVICES)}, http",
            file=sys.stderr,
        )
        return 2
    if not settings.pg_dsn or not settings.kafka_bootstrap:
        print(
            "modelog: `modelog serve` needs MODELOG_PG_DSN and MODELOG_KAFKA_BOOTSTRAP "
            "(use `modelog up` for the embedded stack)",
            file=sys.stderr,
        )
        return 2
    try:
        _configure(settings)
        _check_addr_free(settings.addr)
        asyncio.run(
            serve(settings, settings.pg_dsn, settings.kafka_bootstrap, services=[service], http=False)
        )
    except StartupError as exc:
        print(f"modelog: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
