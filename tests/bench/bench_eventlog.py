"""Append throughput, append latency at half load, and verify speed of one service log.

Measured at the EventStore API (the path every service command takes), PostgreSQL on the same box
with durable commits (fsync on, synchronous_commit on).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from eventlog import EventStore, Metadata, NewEvent, create_log
from tests.bench.common import percentile, postgres, write_result

CLIENTS = 32
DURATION_S = 8.0


async def _closed_loop(store: EventStore, events_per_command: int, duration: float) -> dict[str, Any]:
    payload = [
        NewEvent("MetricsLogged", 1, f'{{"key":"loss","value":0.125,"step":{i}}}')
        for i in range(events_per_command)
    ]
    stop_at = time.perf_counter() + duration
    counts = [0] * CLIENTS

    async def client(c: int) -> None:
        version = await store.stream_version(f"bench-{events_per_command}-{c}")
        meta = Metadata(actor=f"client-{c}")
        while time.perf_counter() < stop_at:
            r = await store.append(f"bench-{events_per_command}-{c}", version, payload, meta)
            version = r.stream_version
            counts[c] += 1

    start = time.perf_counter()
    b0, c0 = store.batches_committed, store.commands_committed
    await asyncio.gather(*(client(c) for c in range(CLIENTS)))
    elapsed = time.perf_counter() - start
    commands = sum(counts)
    batches = store.batches_committed - b0
    return {
        "clients": CLIENTS,
        "events_per_command": events_per_command,
        "seconds": round(elapsed, 2),
        "commands": commands,
        "commands_per_s": round(commands / elapsed),
        "events_per_s": round(commands * events_per_command / elapsed),
        "avg_commands_per_transaction": round((store.commands_committed - c0) / max(1, batches), 1),
    }


async def _open_loop(store: EventStore, rate: float, duration: float) -> dict[str, Any]:
    """Commands issued on a fixed schedule (not as fast as possible), so latency is not queueing."""
    latencies: list[float] = []
    interval = CLIENTS / rate
    stop_at = time.perf_counter() + duration

    async def client(c: int) -> None:
        stream = f"lat-{c}"
        version = await store.stream_version(stream)
        meta = Metadata(actor=f"client-{c}")
        ev = [NewEvent("Thing", 1, '{"x":1}')]
        next_at = time.perf_counter() + interval * c / CLIENTS
        while next_at < stop_at:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            r = await store.append(stream, version, ev, meta)
            latencies.append((time.perf_counter() - t0) * 1000)
            version = r.stream_version
            next_at += interval

    await asyncio.gather(*(client(c) for c in range(CLIENTS)))
    latencies.sort()
    return {
        "target_commands_per_s": round(rate),
        "achieved_commands": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "max_ms": round(latencies[-1], 3) if latencies else None,
    }


async def main() -> dict[str, Any]:
    with postgres() as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=4, max_size=40)
        assert pool is not None
        async with pool.acquire() as conn:
            await conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
            await create_log(conn, "bench")
        store = EventStore(pool, "bench")
        await _closed_loop(store, 1, 1.0)  # warm-up
        single = await _closed_loop(store, 1, DURATION_S)
        print(
            f"append, 32 clients x 1 event:    {single['commands_per_s']:>8,} commands/s "
            f"({single['avg_commands_per_transaction']} per transaction)"
        )
        batched = await _closed_loop(store, 100, DURATION_S)
        print(f"append, 32 clients x 100 events: {batched['events_per_s']:>8,} events/s")
        latency = await _open_loop(store, single["commands_per_s"] / 2, DURATION_S)
        print(
            f"latency at {latency['target_commands_per_s']:,} commands/s: p50 {latency['p50_ms']} ms, "
            f"p99 {latency['p99_ms']} ms"
        )
        head = (await store.head())[0]
        t0 = time.perf_counter()
        report = await store.verify()
        verify_s = time.perf_counter() - t0
        assert report.ok, report
        verify = {
            "events": report.events_checked,
            "seconds": round(verify_s, 2),
            "events_per_s": round(report.events_checked / verify_s),
        }
        print(
            f"verify: {verify['events']:,} events in {verify['seconds']} s "
            f"= {verify['events_per_s']:,} events/s"
        )
        await store.close()
        await pool.close()
    result = {
        "single_event_commands": single,
        "batched_commands": batched,
        "latency_at_half_load": latency,
        "verify": verify,
        "log_size": head,
        "goals": {"commands_per_s": 5000, "events_per_s": 50000, "p99_ms": 10, "verify_events_per_s": 200000},
    }
    path = write_result("eventlog", result)
    print(f"results written to {path}")
    return result


if __name__ == "__main__":
    asyncio.run(main())
