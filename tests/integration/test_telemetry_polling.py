"""An idle platform exports no traces of its own polling: the projection runners' head checks go out
unsampled, while a person's Head call is traced and a head check inside a trace joins it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventlog.sources import GrpcLogReader
from modelog._gen.eventlog.v1 import eventlog_pb2, eventlog_pb2_grpc
from modelog.shared.settings import Settings
from modelog_platform.app import Platform, Server, start_server
from tests.waiting import wait_until_async

HEAD = "/modelog.eventlog.v1.EventLog/Head"


class CountingReader(GrpcLogReader):
    heads = 0

    async def head(self, log: str) -> int:
        self.heads += 1
        return await super().head(log)


@pytest.fixture
async def platform(fresh_db: str, tmp_path: Path) -> AsyncIterator[tuple[Platform, Server, CountingReader]]:
    platform = await Platform.open(Settings(home=tmp_path, addr="127.0.0.1:0"), fresh_db)
    await platform.ensure_admin_token()
    server = await start_server(platform, "127.0.0.1:0")
    reader = CountingReader(f"127.0.0.1:{server.port}", await platform.ensure_internal_token())
    try:
        yield platform, server, reader
    finally:
        await platform.stop_bus()
        await server.stop(0)
        await platform.close()


def _heads(spans: InMemorySpanExporter) -> list[trace.Span]:
    return [s for s in spans.get_finished_spans() if s.name == HEAD]  # type: ignore[misc]


async def test_projection_head_polling_creates_no_root_spans(
    platform: tuple[Platform, Server, CountingReader], span_exporter: InMemorySpanExporter
) -> None:
    plat, server, reader = platform
    span_exporter.clear()
    plat.start_bus(None, reader)

    async def polled() -> bool:
        return reader.heads >= 3 * len(plat.runners)

    await wait_until_async(polled, 60, "every runner to check its sources' heads a few times")
    assert _heads(span_exporter) == [], "internal head polling was traced"

    # A person's call is still traced (so the assertion above is not vacuous) ...
    secret = (plat.settings.admin_token_path).read_text().strip()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        await eventlog_pb2_grpc.EventLogStub(ch).Head(
            eventlog_pb2.HeadRequest(service="tracking"), metadata=[("authorization", f"Bearer {secret}")]
        )
    assert len(_heads(span_exporter)) == 1
    # ... and a head check made inside a trace (Admin's lag, say) joins that trace.
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        await reader.head("tracking")
    joined = _heads(span_exporter)[-1]
    assert joined.parent is not None and joined.parent.span_id == caller.get_span_context().span_id
