"""Sending one webhook request: Standard Webhooks signatures and a small HTTP/1.1 client.

The client is asyncio streams (no new dependency): it connects only to addresses ssrf.py approved,
with a connect and a read timeout, and keeps the connection alive between deliveries of one webhook
when the receiver allows (a new TCP/TLS handshake per event would dominate the latency).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import secrets
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from eventlog import InvalidArgument
from modelog_services.audit.ssrf import AllowList, Blocked, safe_addresses

SECRET_PREFIX = "whsec_"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
USER_AGENT = "modelog-webhooks/1"
MAX_RESPONSE_BODY = 64 * 1024
_KEEPALIVE_S = 60.0


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str, field: str = "secret") -> bytes:
    """The HMAC key: the base64-decoded bytes after `whsec_` (as the spec and its libraries read it)."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidArgument.field(
            field, "a webhook secret looks like whsec_<base64>; leave it empty to get one"
        )
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument.field(field, "the part after whsec_ is not base64") from None
    if not 24 <= len(key) <= 64:
        raise InvalidArgument.field(field, f"the key is {len(key)} bytes; use 24 to 64 random bytes")
    return key


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(key: bytes, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """`webhook-id` stays the same on every retry of one event; the timestamp is the attempt's."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(key, msg_id, ts, body),
    }


@dataclass(frozen=True)
class Response:
    status: int
    """HTTP status; 0 when no response came."""
    latency_ms: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _Closed(Exception):
    """The kept-alive connection was closed by the receiver before answering: try a fresh one."""


class Sender:
    """Posts to one URL, one request at a time (a webhook's deliveries are in order anyway)."""

    def __init__(
        self,
        url: str,
        allow: AllowList | None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 15.0,
    ) -> None:
        parts = urlsplit(url)
        self.url = url
        self.allow = allow
        """None: no address check (the CLI posting from a person's own machine)."""
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = self.port == (443 if self.https else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default_port else f"{host}:{self.port}"
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._opened = 0.0

    async def post(self, body: bytes, headers: Mapping[str, str]) -> Response:
        t0 = time.perf_counter()
        try:
            reused = self._conn is not None
            try:
                status = await self._exchange(body, headers)
            except (_Closed, ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if not reused:
                    raise
                status = await self._exchange(body, headers)  # the receiver dropped an idle connection
        except Blocked as exc:
            return Response(0, _ms(t0), f"blocked: {exc}")
        except TimeoutError:
            await self.close()
            return Response(0, _ms(t0), "timed out")
        except (OSError, ssl.SSLError, ValueError, _Closed, asyncio.IncompleteReadError) as exc:
            await self.close()
            return Response(0, _ms(t0), f"{type(exc).__name__}: {exc}"[:500])
        return Response(status, _ms(t0), "" if 200 <= status < 300 else f"HTTP {status}")

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is not None and time.monotonic() - self._opened < _KEEPALIVE_S:
            return self._conn
        await self.close()
        if self.allow is not None:
            addresses = [str(a) for a in await safe_addresses(self.url, self.allow)]  # DNS may have changed
        else:
            addresses = [self.host]
        ctx = ssl.create_default_context() if self.https else None
        last: BaseException | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    self._conn = await asyncio.open_connection(
                        address, self.port, ssl=ctx, server_hostname=self.host if ctx else None
                    )
                self._opened = time.monotonic()
                return self._conn
            except (OSError, TimeoutError) as exc:
                last = exc
        assert last is not None
        raise last

    async def _exchange(self, body: bytes, headers: Mapping[str, str]) -> int:
        reader, writer = await self._connect()
        lines = [
            f"POST {self.target} HTTP/1.1",
            f"Host: {self.host_header}",
            f"User-Agent: {USER_AGENT}",
            f"Content-Type: {CONTENT_TYPE}",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        async with asyncio.timeout(self.read_timeout_s):  # no extra task per request, unlike wait_for
            status, keep = await self._response(reader)
        if not keep:
            await self.close()
        return status

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bool]:
        line = await reader.readline()
        if not line:
            raise _Closed("the receiver closed the connection without answering")
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ValueError(f"not an HTTP response: {line[:80]!r}")
        status = int(parts[1])
        keep = parts[0] == "HTTP/1.1"
        length: int | None = None
        chunked = False
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection":
                keep = (keep and "close" not in value) or value == "keep-alive"
        if chunked:
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length is not None:
            if length > MAX_RESPONSE_BODY:
                keep = False
            else:
                await reader.readexactly(length)
        elif status not in (204, 304) and not 100 <= status < 200:
            keep = False  # the body runs to the end of the connection: do not wait for it
        return status, keep

    async def close(self) -> None:
        if self._conn is not None:
            _, writer = self._conn
            self._conn = None
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
