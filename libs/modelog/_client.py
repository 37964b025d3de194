"""The connection the SDK and CLI share: one gRPC channel that sends the bearer token on every call."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc

from modelog._gen.admin.v1 import admin_pb2_grpc
from modelog._gen.eventlog.v1 import eventlog_pb2_grpc
from modelog._gen.identity.v1 import identity_pb2_grpc
from modelog_platform.settings import Settings


class _AuthInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(self, token: str | None) -> None:
        self.token = token

    def _details(self, details: Any) -> Any:
        md = list(details.metadata or [])
        if self.token and not any(k == "authorization" for k, _ in md):
            md.append(("authorization", f"Bearer {self.token}"))
        if not any(k == "x-request-id" for k, _ in md):
            md.append(("x-request-id", uuid.uuid4().hex))
        return details._replace(metadata=md)

    def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


class Connection:
    """A connection to a Modelog server; cheap to keep for a whole program."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        settings = Settings()
        self.url = url or settings.client_url()
        self.token = token or settings.client_token()
        self._raw = grpc.insecure_channel(self.url, options=[("grpc.max_receive_message_length", 64 << 20)])
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
