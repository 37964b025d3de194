"""Subscription fan-out: N concurrent Subscribe streams replaying the same history from the start
(goal: 100 subscribers each receiving 10,000 events/s).

The clients run in their own processes (`client` mode below), so what they spend decoding messages is
not charged to the server, as with real CI subscribers on other machines.

`python -m tests.bench.bench_audit_fanout [subscribers] [events_each] [client_processes]`
-> tests/bench/results/audit_fanout.json
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from eventlog import EventStore, Metadata, NewEvent, create_log
from modelog_platform.app import Platform, start_server
from modelog_platform.settings import SERVICES, Settings
from tests.bench.common import postgres, write_result

COMMAND = 10_000


async def fill(store: EventStore, total: int) -> None:
    """MetricsLogged-sized events on the tracking log, as the export bench writes them."""
    for i in range(total // COMMAND):
        events = [
            NewEvent(
                "MetricsLogged", 1, json.dumps({"run": f"r{i}", "key": "loss", "value": j / 7, "step": j})
            )
            for j in range(COMMAND)
        ]
        await store.append(f"run-{i % 50}", None, events, Metadata(actor=f"user{i % 5}", request_id=f"q{i}"))


async def _client(port: int, token: str, subscribers: int, each: int) -> None:
    """One client process: `subscribers` streams; waits for "go" on stdin, prints each stream's seconds."""
    import grpc

    from modelog._gen.audit.v1 import audit_pb2, audit_pb2_grpc

    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(min(subscribers, 5))]
    stubs = [audit_pb2_grpc.AuditStub(channels[i % len(channels)]) for i in range(subscribers)]
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def one(stub: audit_pb2_grpc.AuditStub) -> float:
        t0 = time.perf_counter()
        got = 0
        call = stub.Subscribe(
            audit_pb2.SubscribeRequest(services=["tracking"], from_cursor="start"),
            metadata=[("authorization", f"Bearer {token}")],
        )
        async for msg in call:
            got += len(msg.events.events)
            if got >= each:
                break
        call.cancel()
        return time.perf_counter() - t0

    times = await asyncio.gather(*(one(s) for s in stubs))
    print(json.dumps(times), flush=True)
    for ch in channels:
        await ch.close()


def clients(port: int, token: str, subscribers: int, each: int, processes: int) -> tuple[list[float], float]:
    """Start the client processes, release them together, gather every stream's time."""
    procs = []
    for p in range(processes):
        n = subscribers // processes + (1 if p < subscribers % processes else 0)
        cmd = [
            sys.executable,
            "-m",
            "tests.bench.bench_audit_fanout",
            "client",
            str(port),
            token,
            str(n),
            str(each),
        ]
        procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    times: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        times += json.loads(out.strip().splitlines()[-1])
    return times, time.perf_counter() - t0


async def main(subscribers: int = 100, each: int = 10_000, processes: int = 4) -> dict[str, Any]:
    with postgres() as dsn, tempfile.TemporaryDirectory(prefix="modelog-bench-fanout-") as tmp:
        admin = await asyncpg.connect(dsn)
        await admin.execute("DROP DATABASE IF EXISTS bench_fanout WITH (FORCE)")
        await admin.execute("CREATE DATABASE bench_fanout")
        await admin.close()
        db = urlunsplit(urlsplit(dsn)._replace(path="/bench_fanout"))
        platform = await Platform.open(Settings(home=Path(tmp), addr="127.0.0.1:0"), db, services=("audit",))
        async with platform.pool.acquire() as conn:
            for name in SERVICES:
                if name not in platform.stores:
                    await create_log(conn, name)
                    platform.stores[name] = EventStore(platform.pool, name)
        await fill(platform.stores["tracking"], max(each, COMMAND))
        token = (await platform.ensure_admin_token()).read_text().strip()
        server = await start_server(platform, "127.0.0.1:0")
        print(f"server pid {os.getpid()} on port {server.port}", flush=True)
        times, wall = await asyncio.to_thread(clients, server.port, token, subscribers, each, processes)
        await server.stop(0)
        await platform.close()
    rates = sorted(each / t for t in times)
    data = {
        "subscribers": subscribers,
        "events_each": each,
        "client_processes": processes,
        "wall_seconds": round(wall, 2),
        "per_subscriber_events_per_s_min": round(rates[0]),
        "per_subscriber_events_per_s_median": round(rates[len(rates) // 2]),
        "aggregate_events_per_s": round(subscribers * each / wall),
        "goal": "100 subscribers x 10,000 events/s of history replay each",
        "note": "server in this process, clients in separate processes on the same 2-core box",
    }
    print(json.dumps(data, indent=2))
    print(f"wrote {write_result('audit_fanout', data)}")
    return data


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        asyncio.run(_client(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    else:
        args = [int(a) for a in sys.argv[1:4]]
        asyncio.run(main(*args))
