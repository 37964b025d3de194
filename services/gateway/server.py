"""Serving the gateway app with uvicorn inside the platform's event loop.

uvicorn (with httptools) is the ASGI server most Python production stacks run; running it in our own
loop lets the HTTP layer share the process, its gRPC channel and its shutdown with the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from modelog_platform.tls import TlsFiles

log = logging.getLogger("modelog.http")


class _Embedded(uvicorn.Server):
    """uvicorn without its signal handling: the platform owns SIGINT/SIGTERM and stops us itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class HttpServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int
    tls: bool

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 10)


class HttpAddressError(RuntimeError):
    pass


def _bind(addr: str, reuse_port: bool = False) -> socket.socket:
    host, _, port = addr.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit():
        raise HttpAddressError(f"MODELOG_HTTP_ADDR={addr!r} is not host:port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # `modelog up --workers`: the kernel spreads connections over the processes
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise HttpAddressError(
            f"cannot listen on {addr} for HTTP: {exc.strerror} (set MODELOG_HTTP_ADDR to another "
            "host:port, or MODELOG_HTTP_ADDR=off to serve gRPC only)"
        ) from None
    # Accepted connections inherit it: uvicorn writes a response's head and body separately, and
    # without it the body waits for the client's delayed ACK (40 ms per keep-alive request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def start_http(
    app: ASGIApp, addr: str, tls: TlsFiles | None = None, reuse_port: bool = False
) -> HttpServer:
    """Bind first (so a taken port is a clear start-up error), then serve until stop()."""
    sock = _bind(addr, reuse_port)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # our ready line says we started
    config = uvicorn.Config(
        app,
        http="httptools",
        loop="none",
        lifespan="off",
        access_log=False,
        server_header=False,
        date_header=True,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=5,
        log_config=None,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )
    server = _Embedded(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="modelog-http")
    while not server.started:
        if task.done():
            task.result()
            raise HttpAddressError(f"the HTTP server on {addr} stopped while starting")
        await asyncio.sleep(0.01)
    return HttpServer(server, task, sock.getsockname()[1], tls is not None)
