"""The gateway's one way to reach the services: a gRPC channel, the caller's token forwarded.

Every call goes through the gRPC server's interceptor (over the channel, or in-process beside the
services), which keeps one enforcement point: it authenticates, checks the permission table and maps
errors for HTTP callers exactly as for the SDK. `modelog serve http` uses the same code against a
remote MODELOG_URL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.message import Message

from eventlog.errors import ModelogError
from modelog.shared.status import error_of
from modelog_services.gateway.inprocess import LocalChannel, LocalHandlers

T = TypeVar("T")


def from_rpc(exc: grpc.RpcError) -> ModelogError:
    """A failed call as the server's own error class, details kept (the one mapping back from a
    status, as the SDK's): its routes catch `NotFound` like any handler would."""
    return error_of(exc)


@dataclass(frozen=True)
class Caller:
    """Who an HTTP request comes from, as the services will see it."""

    token: str
    peer: str = ""
    request_id: str | None = None

    def metadata(self, idempotency_key: str | None = None) -> list[tuple[str, str]]:
        md = [("authorization", f"Bearer {self.token}")]
        if self.peer:
            md.append(("x-forwarded-for", self.peer))
        if self.request_id:
            md.append(("x-request-id", self.request_id))
        if idempotency_key:
            md.append(("idempotency-key", idempotency_key))
        return md

    def derived_key(self, *parts: str | bytes) -> str:
        """An idempotency key from what a request says, scoped to the caller: the stock MLflow client
        retries POSTs without a key of its own, and a retry must not write twice."""
        h = hashlib.sha256(hashlib.sha256(self.token.encode()).digest())
        for part in parts:
            h.update(b"\x00")
            h.update(part.encode() if isinstance(part, str) else part)
        return "http-" + h.hexdigest()[:60]


class Upstream:
    """One channel to the services for every HTTP request; stubs are made once. Given the handlers of
    the services in this process (`modelog up`), stubs call them in-process instead (inprocess.py):
    the same interceptor and handlers, without the loopback hop."""

    def __init__(
        self,
        target: str,
        credentials: grpc.ChannelCredentials | None = None,
        local: LocalHandlers | None = None,
    ) -> None:
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
        self.target = target
        self.channel = (
            grpc.aio.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options=options)
        )
        self._stubs: dict[object, Any] = {}
        self._stub_channel: Any = LocalChannel(local, self.channel) if local is not None else self.channel

    def stub(self, cls: Callable[[grpc.aio.Channel], T]) -> T:
        stub = self._stubs.get(cls)
        if stub is None:
            stub = self._stubs[cls] = cls(self._stub_channel)
        return cast(T, stub)

    async def call(
        self,
        method: Any,
        request: Message,
        caller: Caller,
        *,
        idempotency_key: str | None = None,
        deadline_s: float = 60.0,
    ) -> Any:
        try:
            return await method(request, metadata=caller.metadata(idempotency_key), timeout=deadline_s)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc(exc) from None

    async def close(self) -> None:
        await self.channel.close()
