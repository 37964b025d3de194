"""A client that leaves a server stream early is an ordinary end of the call, never a traceback."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modelog._gen.eventlog.v1 import eventlog_pb2, eventlog_pb2_grpc
from tests.integration.busfix import Bus, start_bus, stop_bus
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio

# A client process that reads one event of a following stream, then vanishes without a goodbye
# (what `modelog events tail | head -1` or a killed CI subscriber does).
VANISHING_CLIENT = """
import os, sys, grpc
from modelog._gen.eventlog.v1 import eventlog_pb2, eventlog_pb2_grpc
channel = grpc.insecure_channel(sys.argv[1])
call = eventlog_pb2_grpc.EventLogStub(channel).Tail(
    eventlog_pb2.TailRequest(service="tracking", from_position=1),
    metadata=[("authorization", "Bearer " + sys.argv[2])],
)
print(next(call).position, flush=True)
os._exit(0)
"""


@pytest.fixture
async def bus(fresh_db: str, modelog_home: Path) -> AsyncIterator[Bus]:
    b = await start_bus(fresh_db, modelog_home, None)
    yield b
    await stop_bus(b)


async def tail_spans_ended(span_exporter: InMemorySpanExporter) -> int:
    return sum(1 for s in span_exporter.get_finished_spans() if s.name.endswith(".EventLog/Tail"))


async def test_clients_that_leave_a_following_stream_leave_no_error_in_the_server_log(
    bus: Bus, span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    await bus.append("tracking", 3)
    token = bus.platform.settings.admin_token_path.read_text().strip()
    span_exporter.clear()
    caplog.set_level(logging.WARNING)
    addr = f"127.0.0.1:{bus.server.port}"

    # Politely: the call cancelled, then the channel closed.
    async with grpc.aio.insecure_channel(addr) as channel:
        call = eventlog_pb2_grpc.EventLogStub(channel).Tail(
            eventlog_pb2.TailRequest(service="tracking", from_position=1),
            metadata=[("authorization", f"Bearer {token}")],
        )
        assert (await call.read()).position == 1
        call.cancel()
    # Abruptly: processes that exit mid-stream.
    for _ in range(6):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", VANISHING_CLIENT, addr, token, stdout=subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert out.strip() == b"1"

    await bus.append("tracking", 1)  # a stream whose client left finds out when it next writes
    await wait_until_async(
        lambda: _at_least(tail_spans_ended(span_exporter), 7), 30, "all seven Tail calls to end"
    )
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, [f"{r.name}: {r.getMessage()}" for r in noisy]
    client_left = [s for s in span_exporter.get_finished_spans() if s.name.endswith(".EventLog/Tail")]
    assert all(s.attributes and s.attributes.get("rpc.grpc.client_left") for s in client_left)


async def _at_least(count: object, n: int) -> bool:
    return await count >= n  # type: ignore[misc,operator]
