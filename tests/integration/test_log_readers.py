"""The log-reader contract (tests/contracts.py) against every reader: the store read directly, the
EventLog API over gRPC (how other processes heal gaps) and the audit service's platform reader."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventlog.sources import GrpcLogReader, LogReader, StoreReader
from modelog_services.audit.main import PlatformReader
from tests.contracts import assert_reads_the_log_exactly
from tests.integration.busfix import Bus, start_bus, stop_bus

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def bus(fresh_db: str, modelog_home: Path) -> AsyncIterator[Bus]:
    b = await start_bus(fresh_db, modelog_home, None)
    await b.append("tracking", 40)
    yield b
    await stop_bus(b)


async def test_every_log_reader_reads_each_position_once_in_order(bus: Bus) -> None:
    token = await bus.platform.ensure_internal_token()
    grpc_reader = GrpcLogReader(f"127.0.0.1:{bus.server.port}", token)
    readers: dict[str, LogReader] = {
        "store": StoreReader(bus.platform.stores),
        "grpc": grpc_reader,
        "platform": PlatformReader(bus.platform),  # type: ignore[dict-item]
    }
    try:
        for kind, reader in readers.items():  # one platform for all three: it is the slow part
            try:
                await assert_reads_the_log_exactly(reader, bus.platform.stores["tracking"])
            except AssertionError as exc:
                raise AssertionError(f"the {kind} reader: {exc}") from exc
    finally:
        await grpc_reader.close()
