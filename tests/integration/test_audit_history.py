"""Subscribers replaying history while writers append: every event exactly once, in log order, the
shared history pages handing over to the live tail without a gap or a repeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from eventlog import Metadata, NewEvent
from modelog._gen.audit.v1 import audit_pb2, audit_pb2_grpc
from modelog_platform.app import Server, start_server
from modelog_services.audit import history
from tests.integration.test_audit_export import Stack, open_platform

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def stack(fresh_db: str, modelog_home: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    monkeypatch.setattr(history, "PAGE", 200)  # many pages, so writers land while subscribers page
    platform = await open_platform(fresh_db, modelog_home)
    path = await platform.ensure_admin_token()
    server: Server = await start_server(platform, "127.0.0.1:0")
    yield Stack(platform, server, path.read_text().strip(), modelog_home)
    await server.stop(0)
    await platform.close()


async def append(stack: Stack, log: str, n: int) -> None:
    store = stack.platform.stores[log]
    for i in range(0, n, 50):
        events = [NewEvent("Thing", 1, f'{{"i":{i + j}}}') for j in range(50)]
        await store.append(f"s-{i % 7}", None, events, Metadata(actor="alice"))


async def test_every_subscriber_gets_history_then_live_exactly_once_in_order(stack: Stack) -> None:
    await append(stack, "tracking", 2000)
    await append(stack, "registry", 500)
    total = {"tracking": 3000, "registry": 1000}
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{stack.server.port}")
    stub = audit_pb2_grpc.AuditStub(channel)

    async def subscriber() -> dict[str, list[int]]:
        seen: dict[str, list[int]] = {"tracking": [], "registry": []}
        call = stub.Subscribe(
            audit_pb2.SubscribeRequest(services=["tracking", "registry"], from_cursor="start"),
            metadata=[("authorization", f"Bearer {stack.admin}")],
        )
        async for msg in call:
            for ev in msg.events.events:
                seen[ev.service].append(ev.position)
            if all(len(seen[log]) >= n for log, n in total.items()):
                break
        call.cancel()
        return seen

    subs = [asyncio.create_task(subscriber()) for _ in range(8)]
    await asyncio.gather(append(stack, "tracking", 1000), append(stack, "registry", 500))
    results = await asyncio.wait_for(asyncio.gather(*subs), 60)
    await channel.close()
    for seen in results:
        assert seen == {log: list(range(1, n + 1)) for log, n in total.items()}
