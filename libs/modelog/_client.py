"""The connection the SDK and CLI share: one gRPC channel that sends the bearer token on every call."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import grpc

from modelog._gen.admin.v1 import admin_pb2_grpc
from modelog._gen.eventlog.v1 import eventlog_pb2_grpc
from modelog._gen.identity.v1 import identity_pb2_grpc
from modelog.errors import ModelogError, from_rpc
from modelog.shared.settings import Settings
from modelog.shared.tls import channel_credentials

DEFAULT_TIMEOUT = 300.0
"""The longest a unary call may take, retries included, when its caller gives no timeout."""
CONNECT_TIMEOUT = 2.0
"""How long a connection that never reached its server keeps retrying before it says so."""


_headers: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("modelog_headers", default=())


@contextlib.contextmanager
def headers(extra: Sequence[tuple[str, str]]) -> Iterator[None]:
    """Send these headers on every call this thread makes inside the block (whatever part of the SDK
    makes it): how an importer marks a whole artifact upload as imported history."""
    token = _headers.set(tuple(extra))
    try:
        yield
    finally:
        _headers.reset(token)


class _Stream:
    """A streaming call whose failure arrives as a `modelog.errors` class, like a unary call's."""

    def __init__(self, call: Any, interceptor: _AuthInterceptor, method: str) -> None:
        self._call, self._interceptor, self._method = call, interceptor, method

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._call)
        except grpc.RpcError as exc:
            raise self._interceptor.error(exc, self._method) from None
        self._interceptor.reached = True
        return item

    def __getattr__(self, name: str) -> Any:  # cancel(), code(), trailing_metadata(), ...
        return getattr(self._call, name)


class _AuthInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds the bearer token, a request id and an idempotency key to every call, and retries unary
    calls that fail transiently with the *same* key, so the server applies them once.

    This is also the one place where a failed call becomes a `modelog.errors` class (modelog.errors
    .from_rpc), for unary and streaming calls alike. A unary call without a timeout gets
    DEFAULT_TIMEOUT, and its retries stay within its timeout. Until the server has answered once, an
    unreachable address is retried for `connect_timeout` only: a wrong port fails in about two
    seconds, while a server that was up and went away briefly gets every retry."""

    def __init__(
        self,
        token: str | None,
        retry_delays: tuple[float, ...] = (0.1, 0.3, 1.0, 2.0, 4.0),
        *,
        target: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.token = token
        self.retry_delays = retry_delays
        self.target = target
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.reached = False

    def _details(self, details: Any) -> Any:
        md = list(details.metadata or [])
        keys = {k for k, _ in md}
        md += [(k, v) for k, v in _headers.get() if k not in keys]
        keys |= {k for k, _ in md}
        if self.token and "authorization" not in keys:
            md.append(("authorization", f"Bearer {self.token}"))
        if "x-request-id" not in keys:
            md.append(("x-request-id", uuid.uuid4().hex))
        if "idempotency-key" not in keys:
            md.append(("idempotency-key", uuid.uuid4().hex))
        return details._replace(metadata=md)

    def error(self, exc: grpc.RpcError, method: Any) -> ModelogError:
        if not isinstance(exc, grpc.Call) or exc.code() != grpc.StatusCode.UNAVAILABLE:
            self.reached = True  # the server answered, if only to refuse
        name = method.decode() if isinstance(method, bytes) else str(method)
        return from_rpc(exc, self.target, name)

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        details = self._details(details)
        start = time.monotonic()
        deadline = start + (details.timeout if details.timeout is not None else self.timeout)
        for delay in (*self.retry_delays, None):
            outcome = continuation(details._replace(timeout=max(0.0, deadline - time.monotonic())), request)
            exc = outcome.exception()
            if exc is None:
                self.reached = True
                return outcome
            if not isinstance(exc, grpc.RpcError):
                return outcome  # not a call that failed (a request that would not serialise): as is
            error = self.error(exc, details.method)
            give_up = deadline if self.reached else min(deadline, start + self.connect_timeout)
            if delay is None or not error.transient or time.monotonic() + delay > give_up:
                raise error
            time.sleep(delay)
        return outcome  # pragma: no cover - the loop always returns or raises

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, request_iterator: Any
    ) -> Any:
        details = self._details(details)
        outcome = continuation(details, request_iterator)
        exc = outcome.exception()
        if isinstance(exc, grpc.RpcError):
            raise self.error(exc, details.method)
        if exc is None:
            self.reached = True
        return outcome

    def _stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        details = self._details(details)
        return _Stream(continuation(details, request), self, details.method)

    intercept_unary_stream = _stream
    intercept_stream_stream = _stream


_connected: tuple[str | None, str | None] = (None, None)
"""What `modelog.connect(url, token)` was given: every part of the SDK connects there by default."""


def remember(url: str | None, token: str | None) -> None:
    global _connected
    _connected = (url, token)


class Connection:
    """A connection to a Modelog server; cheap to keep for a whole program. Every call through it
    raises `modelog.errors` classes; `timeout` bounds a unary call that names no timeout of its own,
    `connect_timeout` how long an address that never answered is tried before Unavailable."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        settings = Settings()
        self.url = url or _connected[0] or settings.client_url()
        self.token = token or _connected[1] or settings.client_token()
        options = [("grpc.max_receive_message_length", 64 << 20)]
        if settings.ca_file:  # MODELOG_CA_FILE: TLS, trusting that CA (`modelog up --tls` prints it)
            creds = channel_credentials(settings.ca_file)
            self._raw = grpc.secure_channel(self.url, creds, options=options)
        else:
            self._raw = grpc.insecure_channel(self.url, options=options)
        self._interceptor = _AuthInterceptor(
            self.token, target=self.url, timeout=timeout, connect_timeout=connect_timeout
        )
        self.channel = grpc.intercept_channel(self._raw, self._interceptor)
        self.eventlog = eventlog_pb2_grpc.EventLogStub(self.channel)
        self.identity = identity_pb2_grpc.IdentityStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
