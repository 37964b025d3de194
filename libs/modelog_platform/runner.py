"""`modelog up`: the embedded stack (PostgreSQL, broker, every service) in one supervised process."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import tempfile
from contextlib import ExitStack, suppress

from modelog_platform.app import Platform, StartupError, start_server
from modelog_platform.embedded import EmbeddedBroker, EmbeddedError, EmbeddedPostgres
from modelog_platform.settings import Settings
from modelog_platform.telemetry import setup_logging, setup_tracing

log = logging.getLogger("modelog.up")


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


def _check_addr_free(addr: str) -> None:
    host, _, port = addr.rpartition(":")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as s:
            s.bind((host.strip("[]"), int(port)))
    except ValueError:
        raise StartupError(f"MODELOG_ADDR={addr!r} is not host:port") from None
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {addr}: {exc.strerror} (is another `modelog up` running? "
            "set MODELOG_ADDR to use another port)"
        ) from None


async def _check_kafka(bootstrap: str, wait_s: float = 10.0) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(wait_s * 1000))
    try:
        await asyncio.wait_for(client.start(), wait_s)
    except Exception as exc:
        raise StartupError(f"cannot reach Kafka at {bootstrap}: {exc or type(exc).__name__}") from None
    finally:
        with suppress(Exception):
            await client.close()


async def serve(settings: Settings, dsn: str, bootstrap: str, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.kafka_bootstrap:
        await _check_kafka(bootstrap)
    platform = await Platform.open(settings, dsn)
    try:
        token_path = await platform.ensure_admin_token()
        server = await start_server(platform, settings.addr)
        print(
            f"modelog ready on {settings.addr} | admin token: {token_path} | "
            f"postgres: {dsn} | kafka: {bootstrap} | home: {settings.home}",
            flush=True,
        )
        await stop.wait()
        print("modelog stopping", flush=True)
        await server.stop()
    finally:
        await platform.close()


def up(settings: Settings | None = None) -> int:
    """Run until SIGINT/SIGTERM. Embedded parts start in the main thread so their death-signal
    (PR_SET_PDEATHSIG) is tied to this process, not to a worker thread."""
    settings = settings or Settings()
    setup_logging(settings.log_level)
    setup_tracing("modelog")
    with ExitStack() as stack:
        try:
            _check_home(settings)
            _check_addr_free(settings.addr)
            dsn = settings.pg_dsn
            if not dsn:
                pg = EmbeddedPostgres(settings.pgdata, log_file=settings.log_dir / "postgres.log")
                dsn = pg.start()
                stack.callback(pg.stop)
            bootstrap = settings.kafka_bootstrap
            if not bootstrap:
                broker = EmbeddedBroker(log_file=settings.log_dir / "broker.log")
                bootstrap = broker.start()
                stack.callback(broker.stop)
            asyncio.run(serve(settings, dsn, bootstrap))
        except (StartupError, EmbeddedError) as exc:
            print(f"modelog: {exc}", file=sys.stderr, flush=True)
            return 2
        except KeyboardInterrupt:
            pass
    print("modelog stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(up())
