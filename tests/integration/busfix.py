"""Shared pieces of the bus tests: an in-process platform with relays and projections running."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg

from eventlog import Metadata, NewEvent
from eventlog.sources import GrpcLogReader
from modelog.shared.settings import Settings
from modelog_platform.app import Platform, Server, start_server


class Bus:
    def __init__(self, platform: Platform, server: Server, prefix: str) -> None:
        self.platform, self.server, self.prefix = platform, server, prefix

    @property
    def pool(self) -> asyncpg.Pool:
        return self.platform.pool

    async def append(self, log: str, n: int, stream: str = "s", actor: str = "alice") -> None:
        store = self.platform.stores[log]
        for i in range(n):
            await store.append(
                f"{stream}-{i % 7}", None, [NewEvent("Thing", 1, f'{{"i":{i}}}')], Metadata(actor=actor)
            )

    async def trail_matches_logs(self) -> bool:
        expected = set()
        for name, store in self.platform.stores.items():
            head = (await store.head())[0]
            expected |= {(name, p) for p in range(1, head + 1)}
        rows = await self.pool.fetch("SELECT service, position FROM audit.trail")
        got = [(r[0], r[1]) for r in rows]
        return len(got) == len(set(got)) and set(got) == expected


async def start_bus(dsn: str, home: Path, bootstrap: str | None, prefix: str | None = None) -> Bus:
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
    settings = Settings(home=home, addr="127.0.0.1:0", topic_prefix=prefix)
    platform = await Platform.open(settings, dsn)
    await platform.ensure_admin_token()
    server = await start_server(platform, "127.0.0.1:0")
    token = await platform.ensure_internal_token()
    platform.start_bus(bootstrap, GrpcLogReader(f"127.0.0.1:{server.port}", token))
    return Bus(platform, server, prefix)


async def stop_bus(bus: Bus) -> None:
    await bus.platform.stop_bus()
    await bus.server.stop(0)
    await bus.platform.close()
