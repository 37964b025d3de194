"""The bus: end-to-end lag (append commit -> projection row visible), relay throughput, full rebuild.

One process, PostgreSQL and the tansu broker on the same 2-core box, durable commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from eventlog import EventStore, Metadata, NewEvent
from eventlog.rebuild import rebuild
from eventlog.relay import Relay
from modelog_platform.embedded import EmbeddedBroker
from modelog_services.audit.projections import AuditTrail
from tests.bench.common import percentile, postgres, write_result
from tests.integration.busfix import start_bus, stop_bus

RATE = 2000  # events/s offered for the lag measurement
LAG_SECONDS = 10
WARMUP_SECONDS = 5  # the consumer group join (about 3 s on tansu) is start-up, not steady-state lag
RELAY_EVENTS = 200_000
REBUILD_EVENTS = 1_000_000


async def _fill(store: EventStore, n: int, per_command: int = 500) -> None:
    """Bulk history: commands of `per_command` events from 16 concurrent writers."""
    batch = [NewEvent("Thing", 1, f'{{"i":{i}}}') for i in range(per_command)]
    commands = n // per_command

    async def writer(w: int) -> None:
        for c in range(w, commands, 16):
            await store.append(f"fill-{c % 997}", None, batch, Metadata(actor="bench"))

    await asyncio.gather(*(writer(w) for w in range(16)))


async def _lag(dsn: str, bootstrap: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        bus = await start_bus(dsn, Path(home), bootstrap, prefix=f"lag{int(time.time())}")
        try:
            store = bus.platform.stores["tracking"]
            committed: dict[int, float] = {}
            visible: dict[int, float] = {}
            stop = asyncio.Event()

            async def watch() -> None:
                # Polls the view every 2 ms; a position is visible once the contiguous max reaches it.
                seen = 0
                async with bus.pool.acquire() as conn:
                    while not stop.is_set() or seen < max(committed, default=0):
                        top = await conn.fetchval(
                            "SELECT coalesce(max(position), 0) FROM audit.trail WHERE service = 'tracking'"
                        )
                        now = time.perf_counter()
                        for p in range(seen + 1, top + 1):
                            visible[p] = now
                        seen = max(seen, top)
                        await asyncio.sleep(0.002)

            while await bus.pool.fetchval("SELECT to_regclass('audit.trail')") is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            # Warm-up: the consumer joins its group before the clock starts.
            await store.append("warmup", None, [NewEvent("Thing", 1, "{}")], Metadata(actor="b"))
            head = (await store.head())[0]
            while (  # noqa: ASYNC110
                await bus.pool.fetchval(
                    "SELECT coalesce(max(position), 0) FROM audit.trail WHERE service = 'tracking'"
                )
                < head
            ):
                await asyncio.sleep(0.05)
            watcher = asyncio.create_task(watch())
            interval = 1 / RATE
            start = time.perf_counter()
            sent = 0

            async def one(i: int) -> None:
                r = await store.append(
                    f"lag-{i % 50}", None, [NewEvent("Thing", 1, "{}")], Metadata(actor="b")
                )
                committed[r.last_position] = time.perf_counter()

            pending = set()
            while time.perf_counter() - start < WARMUP_SECONDS + LAG_SECONDS:
                due = int((time.perf_counter() - start) / interval)
                while sent < due:
                    pending.add(asyncio.create_task(one(sent)))
                    sent += 1
                await asyncio.sleep(0.001)
                pending = {t for t in pending if not t.done()}
            await asyncio.gather(*pending)
            achieved = len(committed) / (time.perf_counter() - start)
            stop.set()
            await asyncio.wait_for(watcher, 60)
            measured = {p: t for p, t in committed.items() if t - start >= WARMUP_SECONDS}
            lags = sorted((visible[p] - t) * 1000 for p, t in measured.items() if p in visible)
            if os.environ.get("MODELOG_BENCH_DEBUG"):
                buckets: dict[int, float] = {}
                for p, t in committed.items():
                    if p in visible:
                        b = int((t - start) * 4)
                        buckets[b] = max(buckets.get(b, 0), (visible[p] - t) * 1000)
                print({k / 4: round(v) for k, v in sorted(buckets.items())})
            return {
                "offered_events_per_s": RATE,
                "achieved_events_per_s": round(achieved),
                "events": len(lags),
                "p50_ms": round(percentile(lags, 0.5), 1),
                "p99_ms": round(percentile(lags, 0.99), 1),
                "max_ms": round(lags[-1], 1),
                "poll_resolution_ms": 2,
                "goal_p99_ms": 250,
            }
        finally:
            await stop_bus(bus)


async def _relay(pool: asyncpg.Pool, bootstrap: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        from eventlog import create_log
        from eventlog.relay import relay_ddl

        await conn.execute("DROP SCHEMA IF EXISTS relaybench CASCADE")
        await create_log(conn, "relaybench")
        await conn.execute(relay_ddl("relaybench"))
    store = EventStore(pool, "relaybench")
    await _fill(store, RELAY_EVENTS)
    relay = Relay(store, bootstrap, topic_prefix=f"rb{int(time.time())}", batch=5000)
    t0 = time.perf_counter()
    task = asyncio.create_task(relay.run())
    while relay.checkpoint < RELAY_EVENTS:  # noqa: ASYNC110 - polling the relay's own counter
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - t0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await store.close()
    return {
        "events": RELAY_EVENTS,
        "seconds": round(seconds, 2),
        "events_per_s": round(RELAY_EVENTS / seconds),
        "goal_events_per_s": 20000,
    }


async def _rebuild(dsn: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        bus = await start_bus(dsn, Path(home), None)
        try:
            store = bus.platform.stores["tracking"]
            have = (await store.head())[0]
            t0 = time.perf_counter()
            await _fill(store, max(0, REBUILD_EVENTS - have))
            fill_s = time.perf_counter() - t0
            total = sum([(await s.head())[0] for s in bus.platform.stores.values()])
            assert bus.platform.reader is not None
            report = await rebuild(
                bus.pool, AuditTrail(), bus.platform.reader
            )  # through EventLog.ReadLog (gRPC)
            return {
                "events": report.events,
                "log_events_total": total,
                "seconds": round(report.seconds, 2),
                "events_per_s": round(report.events / report.seconds),
                "reader": "EventLog.ReadLog over gRPC",
                "fill_seconds": round(fill_s, 1),
                "goal_seconds": 60,
            }
        finally:
            await stop_bus(bus)


async def main() -> dict[str, Any]:
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    try:
        with postgres() as dsn:
            lag = await _lag(dsn, bootstrap)
            print(
                f"end-to-end lag at {lag['achieved_events_per_s']:,} events/s: p50 {lag['p50_ms']} ms, "
                f"p99 {lag['p99_ms']} ms"
            )
            pool = await asyncpg.create_pool(dsn, min_size=2, max_size=20)
            assert pool is not None
            relay = await _relay(pool, bootstrap)
            await pool.close()
            print(
                f"relay: {relay['events']:,} events in {relay['seconds']} s "
                f"= {relay['events_per_s']:,} events/s"
            )
            rb = await _rebuild(dsn)
            print(
                f"rebuild audit_trail: {rb['events']:,} events in {rb['seconds']} s "
                f"= {rb['events_per_s']:,} events/s"
            )
    finally:
        broker.stop()
    result = {"end_to_end_lag": lag, "relay": relay, "rebuild": rb}
    path = write_result("bus", result)
    print(f"results written to {path}")
    return result


if __name__ == "__main__":
    asyncio.run(main())
