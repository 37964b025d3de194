"""Subscriptions: live events, resume exactly after the cursor, filters, bad cursors.

How fast a live event arrives is measured in tests/bench, never asserted here."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from eventlog import Metadata, NewEvent
from modelog import audit, errors
from modelog_platform.app import Server, start_server
from tests.integration.test_audit_export import Stack, open_platform
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def stack(fresh_db: str, modelog_home: Path) -> AsyncIterator[Stack]:
    platform = await open_platform(fresh_db, modelog_home)
    path = await platform.ensure_admin_token()
    server: Server = await start_server(platform, "127.0.0.1:0")
    yield Stack(platform, server, path.read_text().strip(), modelog_home)
    await server.stop(0)
    await platform.close()


async def approve(stack: Stack, request: str, *, noise: bool = True) -> None:
    registry = stack.platform.stores["registry"]
    if noise:  # events the filter must skip, on the same log and on another
        await registry.append("model-m1", None, [NewEvent("VersionAnnotated", 1, "{}")], Metadata())
        await stack.platform.stores["tracking"].append("run-1", None, [NewEvent("X", 1, "{}")], Metadata())
    body = json.dumps({"request_id": request, "version": 1, "by": "bob"})
    await registry.append("model-m1", None, [NewEvent("TransitionApproved", 1, body)], Metadata(actor="bob"))


async def pull(sub: audit.Subscription) -> audit.SubscribedEvent:
    return await asyncio.wait_for(asyncio.to_thread(next, sub), 10.0)


async def caught_up(sub: audit.Subscription, started_from: str) -> None:
    """Wait until the stream is open and past its history: the server's first heartbeat (read by a
    pending `pull`) replaces the cursor the subscription started from."""
    await wait_until_async(lambda: sub.cursor != started_from, 10, "the subscription's first heartbeat")


async def test_ci_subscriber_gets_a_live_approval_and_resumes_exactly(stack: Stack) -> None:
    conn = stack.conn()
    sub = audit.subscribe(
        ["registry.TransitionApproved"], from_cursor="start", heartbeat_s=0.1, connection=conn
    )
    waiting = asyncio.create_task(pull(sub))
    await caught_up(sub, "start")  # the approval below is live, not history
    await approve(stack, "r0")
    first = await waiting
    assert first.qualified_type == "registry.TransitionApproved" and first.payload["request_id"] == "r0"
    assert first.metadata["actor"] == "bob"
    cursor = first.cursor
    sub.close()

    for r in ("r1", "r2", "r3"):  # missed while disconnected
        await approve(stack, r)
    sub = audit.subscribe(["registry.TransitionApproved"], from_cursor=cursor, connection=conn)
    got = [await pull(sub) for _ in range(3)]
    assert [e.payload["request_id"] for e in got] == ["r1", "r2", "r3"]
    assert [e.position for e in got] == sorted(e.position for e in got)
    await approve(stack, "r4")
    assert (await pull(sub)).payload["request_id"] == "r4"  # nothing repeated, nothing extra
    sub.close()
    conn.close()


async def test_now_skips_history_and_stream_prefix_filters(stack: Stack) -> None:
    await approve(stack, "old")
    conn = stack.conn()
    sub = audit.subscribe(streams=["model-*"], services=["registry"], heartbeat_s=0.1, connection=conn)
    waiting = asyncio.create_task(pull(sub))
    await caught_up(sub, "now")  # "now" is the heads when the stream opened: append after that
    await stack.platform.stores["registry"].append("other", None, [NewEvent("Y", 1, "{}")], Metadata())
    await approve(stack, "new", noise=False)
    ev = await waiting
    assert ev.stream_id == "model-m1" and ev.payload["request_id"] == "new"
    sub.close()
    conn.close()


async def test_heartbeats_advance_the_cursor_when_nothing_matches(stack: Stack) -> None:
    conn = stack.conn()
    sub = audit.subscribe(["registry.Nothing"], from_cursor="start", heartbeat_s=0.1, connection=conn)
    await stack.platform.stores["tracking"].append("run-1", None, [NewEvent("X", 1, "{}")], Metadata())

    def until_cursor_moves() -> str:
        for msg in sub._call:  # heartbeats are not events: read the raw stream
            if msg.WhichOneof("kind") == "heartbeat" and _decode(msg.cursor).get("tracking") == 1:
                return str(msg.cursor)
        return ""

    assert await asyncio.wait_for(asyncio.to_thread(until_cursor_moves), 10)
    sub.close()
    conn.close()


def _decode(cursor: str) -> dict[str, int]:
    from modelog.shared.audit.cursor import decode_cursor

    return decode_cursor(cursor)


async def test_a_damaged_cursor_is_invalid_argument(stack: Stack) -> None:
    with stack.conn() as conn:
        sub = audit.subscribe(from_cursor="c1.!!!", connection=conn)
        with pytest.raises(errors.InvalidArgument) as info:
            await asyncio.to_thread(next, sub)
        assert "cursor" in info.value.message


async def test_replay_prints_exactly_the_range_between_two_cursors(stack: Stack, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from modelog.cli.audit import replay

    for r in ("a", "b", "c", "d"):
        await approve(stack, r)
    with stack.conn() as conn:
        everything = await asyncio.to_thread(lambda: list(audit.replay("start", connection=conn)))
        approvals = [e for e in everything if e.type == "TransitionApproved"]
        assert [e.payload["request_id"] for e in approvals] == ["a", "b", "c", "d"]
        after_a, through_c = approvals[0].cursor, approvals[2].cursor
        middle = await asyncio.to_thread(
            lambda: list(
                audit.replay(after_a, through_c, types=["registry.TransitionApproved"], connection=conn)
            )
        )
    assert [e.payload["request_id"] for e in middle] == ["b", "c"]

    env = {"MODELOG_URL": f"127.0.0.1:{stack.server.port}", "MODELOG_TOKEN": stack.admin}
    args = ["--from", after_a, "--to", through_c, "--type", "TransitionApproved", "--json"]
    res = await asyncio.to_thread(CliRunner().invoke, replay, args, env=env)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["payload"]["request_id"] for r in rows] == ["b", "c"]
    assert rows[-1]["cursor"] == through_c
    res = await asyncio.to_thread(
        CliRunner().invoke, replay, ["--from", "start", "--service", "tracking"], env=env
    )
    assert res.exit_code == 0 and res.output.count("tracking") == 4, res.output
    bad = await asyncio.to_thread(CliRunner().invoke, replay, ["--from", "nonsense"], env=env)
    assert bad.exit_code == 2 and "cursor" in bad.output


async def test_replay_to_a_topic_redelivers_cloudevents_in_order(stack: Stack, kafka_bootstrap: str) -> None:
    import uuid

    from click.testing import CliRunner

    from eventlog.cloudevents import from_message
    from modelog.cli.audit import replay
    from tests.integration.test_bus import consume

    for r in ("a", "b", "c"):
        await approve(stack, r, noise=False)
    topic = f"replay-{uuid.uuid4().hex[:8]}"
    env = {"MODELOG_URL": f"127.0.0.1:{stack.server.port}", "MODELOG_TOKEN": stack.admin}
    args = ["--from", "start", "--service", "registry", "--to-topic", topic, "--bootstrap", kafka_bootstrap]
    res = await asyncio.to_thread(CliRunner().invoke, replay, args, env=env)
    assert res.exit_code == 0 and "re-delivered 3 events" in res.output, res.output
    msgs = await consume(kafka_bootstrap, topic, 3)
    got = [from_message(m.value, m.headers) for m in msgs]  # type: ignore[attr-defined]
    stored = await stack.platform.stores["registry"].read_log(1, 10)
    assert got == stored  # byte for byte what the log holds, hashes included


async def test_a_slow_subscriber_gets_every_event_in_order(stack: Stack) -> None:
    tracking = stack.platform.stores["tracking"]
    for i in range(30):
        events = [NewEvent("Step", 1, json.dumps({"n": i * 100 + j})) for j in range(100)]
        await tracking.append("run-slow", None, events, Metadata())
    conn = stack.conn()
    sub = audit.subscribe(services=["tracking"], from_cursor="start", connection=conn)

    def read_slowly() -> list[int]:
        seen = []
        for ev in sub:
            seen.append(ev.payload["n"])
            if len(seen) % 500 == 0:
                time.sleep(0.2)  # a slow consumer is the case under test: the server must wait for it
            if len(seen) == 3000:
                return seen
        return seen

    reader = asyncio.create_task(asyncio.wait_for(asyncio.to_thread(read_slowly), 60))
    more = [NewEvent("Step", 1, json.dumps({"n": 3000 + j})) for j in range(10)]
    await tracking.append("run-slow", None, more, Metadata())  # live events arrive while it lags
    assert await reader == list(range(3000))
    assert [next(sub).payload["n"] for _ in range(10)] == list(range(3000, 3010))
    sub.close()
    conn.close()


async def test_more_subscribers_than_pool_connections_all_get_history(stack: Stack) -> None:
    from modelog._gen.audit.v1 import audit_pb2, audit_pb2_grpc

    await approve(stack, "x")
    n = stack.platform.settings.pool_size + 8
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{stack.server.port}")
    stub = audit_pb2_grpc.AuditStub(channel)

    async def first_approval() -> str:
        call = stub.Subscribe(
            audit_pb2.SubscribeRequest(types=["TransitionApproved"], from_cursor="start"),
            metadata=[("authorization", f"Bearer {stack.admin}")],
        )
        async for msg in call:
            if msg.HasField("events"):
                call.cancel()
                return str(json.loads(msg.events.events[0].payload_json)["request_id"])
        return ""

    got = await asyncio.wait_for(asyncio.gather(*(first_approval() for _ in range(n))), 30)
    assert got == ["x"] * n
    await channel.close()
