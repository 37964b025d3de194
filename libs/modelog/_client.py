"""The connection the SDK and CLI share: one gRPC channel that sends the bearer token on every call."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from modelog._gen.admin.v1 import admin_pb2_grpc
from modelog._gen.eventlog.v1 import eventlog_pb2_grpc
from modelog._gen.identity.v1 import identity_pb2_grpc
from modelog_platform.settings import Settings

TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class _AuthInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds the bearer token, a request id and an idempotency key to every call, and retries unary
    calls that fail transiently with the *same* key, so the server applies them once."""

    def __init__(
        self, token: str | None, retry_delays: tuple[float, ...] = (0.1, 0.3, 1.0, 2.0, 4.0)
    ) -> None:
        self.token = token
        self.retry_delays = retry_delays

    def _details(self, details: Any) -> Any:
        md = list(details.metadata or [])
        keys = {k for k, _ in md}
        if self.token and "authorization" not in keys:
            md.append(("authorization", f"Bearer {self.token}"))
        if "x-request-id" not in keys:
            md.append(("x-request-id", uuid.uuid4().hex))
        if "idempotency-key" not in keys:
            md.append(("idempotency-key", uuid.uuid4().hex))
        return details._replace(metadata=md)

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        details = self._details(details)
        for delay in (*self.retry_delays, None):
            outcome = continuation(details, request)
            exc = outcome.exception()
            if exc is None or delay is None or not isinstance(exc, grpc.Call) or exc.code() not in TRANSIENT:
                return outcome
            time.sleep(delay)
        return outcome  # pragma: no cover - the loop always returns

    def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


class Connection:
    """A connection to a Modelog server; cheap to keep for a whole program."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        settings = Settings()
        self.url = url or settings.client_url()
        self.token = token or settings.client_token()
        options = [("grpc.max_receive_message_length", 64 << 20)]
        if settings.ca_file:  # MODELOG_CA_FILE: TLS, trusting that CA (`modelog up --tls` prints it)
            from modelog_platform.tls import channel_credentials

            creds = channel_credentials(settings.ca_file)
            self._raw = grpc.secure_channel(self.url, creds, options=options)
        else:
            self._raw = grpc.insecure_channel(self.url, options=options)
        self.channel = grpc.intercept_channel(self._raw, _AuthInterceptor(self.token))
        self.eventlog = eventlog_pb2_grpc.EventLogStub(self.channel)
        self.identity = identity_pb2_grpc.IdentityStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
