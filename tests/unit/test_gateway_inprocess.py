"""The gateway's in-process calls run what the gRPC server would: its interceptors, then the handler,
with a refusal coming back as the same AioRpcError a remote call raises."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from modelog_services.gateway.inprocess import LocalChannel, LocalHandlers

SERVING = health_pb2.HealthCheckResponse.SERVING


class OnlyWithToken(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Stands in for the platform's interceptor: refuses a call without the token."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        md = dict(details.invocation_metadata)
        self.seen.append((details.method, md.get("x-forwarded-for", "")))
        handler = await continuation(details)
        if md.get("authorization") == "Bearer ok":
            return handler

        async def refuse(request: Any, ctx: grpc.aio.ServicerContext) -> None:
            await ctx.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")

        return grpc.unary_unary_rpc_method_handler(refuse)


async def test_a_local_call_runs_the_interceptor_then_the_handler() -> None:
    server = grpc.aio.server()
    guard = OnlyWithToken()
    local = LocalHandlers()
    local.capture(server, [guard])
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    await health.set("tracking", SERVING)
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # nothing listens: only a fallback would use it
    stub = health_pb2_grpc.HealthStub(LocalChannel(local, channel))  # type: ignore[no-untyped-call]
    md = [("authorization", "Bearer ok"), ("x-forwarded-for", "10.0.0.7")]
    got = await stub.Check(health_pb2.HealthCheckRequest(service="tracking"), metadata=md)
    assert got.status == SERVING
    assert guard.seen == [("/grpc.health.v1.Health/Check", "10.0.0.7")]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Check(health_pb2.HealthCheckRequest(service="tracking"), metadata=[])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "missing bearer token"
    with pytest.raises(grpc.aio.AioRpcError) as missing:  # the handler's own refusal
        await stub.Check(health_pb2.HealthCheckRequest(service="nope"), metadata=md)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    await channel.close()


async def test_a_server_stream_is_iterated_and_cancelled_like_a_grpc_call() -> None:
    server = grpc.aio.server()
    local = LocalHandlers()
    local.capture(server, [OnlyWithToken()])
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    await health.set("tracking", SERVING)
    channel = grpc.aio.insecure_channel("127.0.0.1:9")
    stub = health_pb2_grpc.HealthStub(LocalChannel(local, channel))  # type: ignore[no-untyped-call]
    call = stub.Watch(
        health_pb2.HealthCheckRequest(service="tracking"), metadata=[("authorization", "Bearer ok")]
    )
    first = await call.__aiter__().__anext__()
    assert first.status == SERVING
    assert call.cancel()
    await channel.close()
