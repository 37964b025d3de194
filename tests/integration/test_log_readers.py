"""The log-reader contract (tests/contracts.py) against every reader: the store read directly, the
EventLog API over gRPC (how other processes heal gaps), the audit service's platform reader, and the
shared tail webhooks follow (read through a small adapter; its following is tested with webhooks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventlog import EventStore, RecordedEvent
from eventlog.sources import GrpcLogReader, LogReader, StoreReader
from modelog_services.audit.main import PlatformReader
from modelog_services.audit.shared_tail import SharedTail
from tests.contracts import assert_reads_the_log_exactly, assert_streams_read_exactly
from tests.integration.busfix import Bus, start_bus, stop_bus

pytestmark = pytest.mark.asyncio


class TailReader:
    """A SharedTail seen as a LogReader: one batch of what it yields from a position."""

    def __init__(self, tail: SharedTail, store: EventStore) -> None:
        self.tail, self.store = tail, store

    async def read(self, log: str, from_position: int, limit: int) -> list[RecordedEvent]:
        if from_position > await self.head(log):
            return []  # the tail would wait for the next append
        async for batch in self.tail.tail_batches(from_position, limit):
            return list(batch)
        return []

    async def head(self, log: str) -> int:
        return (await self.store.head())[0]


@pytest.fixture
async def bus(fresh_db: str, modelog_home: Path) -> AsyncIterator[Bus]:
    b = await start_bus(fresh_db, modelog_home, None)
    await b.append("tracking", 40)
    yield b
    await stop_bus(b)


async def test_every_log_reader_reads_each_position_once_in_order(bus: Bus) -> None:
    token = await bus.platform.ensure_internal_token()
    grpc_reader = GrpcLogReader(f"127.0.0.1:{bus.server.port}", token)
    store = bus.platform.stores["tracking"]
    tail = SharedTail(store, keep=8)  # keeps less than the log: reads behind it come from the store
    readers: dict[str, LogReader] = {
        "store": StoreReader(bus.platform.stores),
        "grpc": grpc_reader,
        "platform": PlatformReader(bus.platform),  # type: ignore[dict-item]
        "shared tail": TailReader(tail, store),
    }
    try:
        for kind, reader in readers.items():  # one platform for all: it is the slow part
            try:
                await assert_reads_the_log_exactly(reader, bus.platform.stores["tracking"])
            except AssertionError as exc:
                raise AssertionError(f"the {kind} reader: {exc}") from exc
        await assert_streams_read_exactly(store)
    finally:
        await grpc_reader.close()
        await tail.close()
