"""The gRPC surface of the platform in-process: auth, EventLog reads, bad input, tokens, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventlog import Metadata, NewEvent
from modelog._gen.eventlog.v1 import eventlog_pb2, eventlog_pb2_grpc
from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog.shared.settings import SERVICES, Settings
from modelog_platform.app import Platform, Server, start_server
from modelog_platform.grpc_errors import status_details

pytestmark = pytest.mark.asyncio


class Stack:
    def __init__(self, platform: Platform, server: Server, admin: str) -> None:
        self.platform, self.server, self.admin = platform, server, admin
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        self.eventlog = eventlog_pb2_grpc.EventLogStub(self.channel)
        self.identity = identity_pb2_grpc.IdentityStub(self.channel)

    def auth(self, token: str | None = None, **extra: str) -> list[tuple[str, str]]:
        md = [("authorization", f"Bearer {token or self.admin}")]
        md.extend((k.replace("_", "-"), v) for k, v in extra.items())
        return md


@pytest.fixture
async def stack(fresh_db: str, modelog_home: Path) -> AsyncIterator[Stack]:
    settings = Settings(home=modelog_home, addr="127.0.0.1:0")
    platform = await Platform.open(settings, fresh_db)
    path = await platform.ensure_admin_token()
    server = await start_server(platform, "127.0.0.1:0")
    s = Stack(platform, server, path.read_text().strip())
    yield s
    await s.channel.close()
    await server.stop(0)
    await platform.close()


async def test_admin_token_is_written_once_with_mode_0600(stack: Stack, modelog_home: Path) -> None:
    path = modelog_home / "admin-token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert stack.admin.startswith("mlg_")
    again = await stack.platform.ensure_admin_token()
    assert again.read_text().strip() == stack.admin
    row = await stack.platform.pool.fetchrow("SELECT token_sha256 FROM identity.tokens WHERE name='admin'")
    assert stack.admin not in row[0]  # only the hash is stored


async def test_missing_or_unknown_token_is_unauthenticated(stack: Stack) -> None:
    for md in ([], [("authorization", "Bearer mlg_nope")], [("authorization", "Basic abc")]):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stack.eventlog.Head(eventlog_pb2.HeadRequest(service="tracking"), metadata=md)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "token" in (info.value.details() or "")


async def test_every_service_log_exists_and_reads_back(stack: Stack) -> None:
    logs = await stack.eventlog.ListLogs(eventlog_pb2.ListLogsRequest(), metadata=stack.auth())
    assert {h.service for h in logs.logs} >= set(SERVICES)
    store = stack.platform.stores["tracking"]
    for i in range(5):
        await store.append(f"run-{i}", 0, [NewEvent("Thing", 1, f'{{"i":{i}}}')], Metadata(actor="alice"))
    head = await stack.eventlog.Head(eventlog_pb2.HeadRequest(service="tracking"), metadata=stack.auth())
    assert head.position == 5
    events = [
        e
        async for b in stack.eventlog.ReadLog(
            eventlog_pb2.ReadLogRequest(service="tracking", from_position=2, limit=3), metadata=stack.auth()
        )
        for e in b.events
    ]
    assert [e.position for e in events] == [2, 3, 4]
    assert events[0].payload_json == '{"i":1}' and '"actor":"alice"' in events[0].metadata_json
    assert events[-1].hash and events[1].prev_hash == events[0].hash
    verify = await stack.eventlog.Verify(
        eventlog_pb2.VerifyRequest(service="tracking"), metadata=stack.auth()
    )
    assert verify.ok and verify.events_checked == 5 and verify.head_hash == head.hash


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"service": "tracking", "from_position": -1}, "from_position"),
        ({"service": "tracking", "limit": -5}, "limit"),
        ({"service": "tracking", "limit": 10**12}, "limit"),
        ({"service": ""}, "service"),
    ],
)
async def test_bad_readlog_requests_are_invalid_argument(
    stack: Stack, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stack.eventlog.ReadLog(
            eventlog_pb2.ReadLogRequest(**request_fields),  # type: ignore[arg-type]
            metadata=stack.auth(),
        ):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (info.value.details() or "")
    assert status_details(info.value)["field_violations"][0][0] == field  # type: ignore[index]
    await assert_still_serving(stack)


async def test_unknown_log_is_not_found(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.eventlog.Head(eventlog_pb2.HeadRequest(service="nope"), metadata=stack.auth())
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "tracking" in (info.value.details() or "")


@pytest.mark.parametrize(
    "garbage",
    [
        {"traceparent": "not-a-trace"},
        {"x_request_id": "has spaces in it"},
        {"x_request_id": "x" * 500},
        {"idempotency_key": "k" * 129},
        {"x_correlation_id": ""},
    ],
)
async def test_garbage_metadata_is_invalid_argument_and_server_keeps_serving(
    stack: Stack, garbage: dict[str, str]
) -> None:
    md = stack.auth(**garbage)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.eventlog.Head(eventlog_pb2.HeadRequest(service="tracking"), metadata=md)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata." in (info.value.details() or "")
    await assert_still_serving(stack)


async def assert_still_serving(stack: Stack) -> None:
    health = health_pb2_grpc.HealthStub(stack.channel)
    resp = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    head = await stack.eventlog.Head(eventlog_pb2.HeadRequest(service="tracking"), metadata=stack.auth())
    assert head.service == "tracking"


async def test_tokens_are_created_used_limited_and_revoked(stack: Stack) -> None:
    made = await stack.identity.CreateToken(
        identity_pb2.CreateTokenRequest(name="ci-bot"), metadata=stack.auth()
    )
    assert made.secret.startswith("mlg_") and list(made.token.roles) == ["member"]
    who = await stack.identity.WhoAmI(identity_pb2.WhoAmIRequest(), metadata=stack.auth(made.secret))
    assert who.actor == "ci-bot"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.identity.CreateToken(
            identity_pb2.CreateTokenRequest(name="x"), metadata=stack.auth(made.secret)
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.identity.CreateToken(
            identity_pb2.CreateTokenRequest(name="ci-bot"), metadata=stack.auth()
        )
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.identity.CreateToken(
            identity_pb2.CreateTokenRequest(name="Bad Name"), metadata=stack.auth()
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The token's creation is an event in the identity log, naming who created it.
    events = [
        e
        async for b in stack.eventlog.ReadLog(
            eventlog_pb2.ReadLogRequest(service="identity"), metadata=stack.auth()
        )
        for e in b.events
    ]
    assert [e.type for e in events] == ["TokenIssued", "TokenIssued"]
    assert '"actor":"admin"' in events[1].metadata_json
    await stack.identity.RevokeToken(identity_pb2.RevokeTokenRequest(name="ci-bot"), metadata=stack.auth())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.identity.WhoAmI(identity_pb2.WhoAmIRequest(), metadata=stack.auth(made.secret))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_health_and_reflection_need_no_token(stack: Stack) -> None:
    health = health_pb2_grpc.HealthStub(stack.channel)
    assert (
        await health.Check(health_pb2.HealthCheckRequest(service="modelog.eventlog.v1.EventLog"))
    ).status == (health_pb2.HealthCheckResponse.SERVING)
    refl = reflection_pb2_grpc.ServerReflectionStub(stack.channel)
    call = refl.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.done_writing()
    names = {s.name async for r in call for s in r.list_services_response.service}
    assert {"modelog.eventlog.v1.EventLog", "modelog.identity.v1.Identity", "grpc.health.v1.Health"} <= names


async def test_server_span_continues_the_callers_trace(
    stack: Stack, span_exporter: InMemorySpanExporter
) -> None:
    span_exporter.clear()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    md = stack.auth(traceparent=f"00-{trace_id}-00f067aa0ba902b7-01")
    await stack.eventlog.Head(eventlog_pb2.HeadRequest(service="tracking"), metadata=md)
    spans = [s for s in span_exporter.get_finished_spans() if s.name == "/modelog.eventlog.v1.EventLog/Head"]
    assert spans, [s.name for s in span_exporter.get_finished_spans()]
    assert f"{spans[0].context.trace_id:032x}" == trace_id
    assert spans[0].parent is not None and spans[0].parent.span_id == 0x00F067AA0BA902B7


async def test_a_retried_create_token_does_not_create_twice_nor_return_a_useless_secret(stack: Stack) -> None:
    md = stack.auth(idempotency_key="mint-bob-1")
    made = await stack.identity.CreateToken(identity_pb2.CreateTokenRequest(name="bob"), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.identity.CreateToken(identity_pb2.CreateTokenRequest(name="bob"), metadata=md)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "earlier attempt" in (info.value.details() or "")
    who = await stack.identity.WhoAmI(identity_pb2.WhoAmIRequest(), metadata=stack.auth(made.secret))
    assert who.actor == "bob"
