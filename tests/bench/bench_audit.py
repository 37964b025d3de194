"""Audit bench: signed export and offline verify of 1,000,000 events (goal >= 100,000 events/s each).

`python -m tests.bench.bench_audit [events]` -> tests/bench/results/audit.json
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
from modelog_services.audit.export import Scope, export_bundle
from modelog_services.audit.main import PlatformReader
from modelog_services.audit.signing import SigningKey
from modelog_services.audit.verify import verify_file
from tests.bench.common import postgres, write_result

COMMAND = 10_000


async def fill(store: EventStore, total: int) -> float:
    """`total` events on the tracking log, 10,000 per command, a few commands in flight."""
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(4)

    async def one(i: int) -> None:
        events = [
            NewEvent(
                "MetricsLogged", 1, json.dumps({"run": f"r{i}", "key": "loss", "value": j / 7, "step": j})
            )
            for j in range(COMMAND)
        ]
        async with sem:
            await store.append(
                f"run-{i % 50}", None, events, Metadata(actor=f"user{i % 5}", request_id=f"q{i}")
            )

    await asyncio.gather(*(one(i) for i in range(total // COMMAND)))
    return time.perf_counter() - t0


async def fanout(port: int, token: str, subscribers: int, each: int) -> dict[str, Any]:
    """`subscribers` concurrent Subscribe streams from the start of history, each reading `each` events,
    from client processes of their own (bench_audit_fanout), so client decoding is not charged here."""
    from tests.bench.bench_audit_fanout import clients

    processes = 4
    times, wall = await asyncio.to_thread(clients, port, token, subscribers, each, processes)
    rates = sorted(each / t for t in times)
    return {
        "subscribers": subscribers,
        "events_each": each,
        "client_processes": processes,
        "wall_seconds": round(wall, 2),
        "per_subscriber_events_per_s_min": round(rates[0]),
        "per_subscriber_events_per_s_median": round(rates[len(rates) // 2]),
        "aggregate_events_per_s": round(subscribers * each / wall),
        "goal": "100 subscribers x 10,000 events/s of history replay each",
        "note": "clients in 4 processes of their own on the same box; history pages shared between them",
    }


async def main(total: int = 1_000_000) -> dict[str, Any]:
    with postgres() as dsn, tempfile.TemporaryDirectory(prefix="modelog-bench-audit-") as tmp:
        admin = await asyncpg.connect(dsn)
        await admin.execute("DROP DATABASE IF EXISTS bench_audit WITH (FORCE)")
        await admin.execute("CREATE DATABASE bench_audit")
        await admin.close()
        db = urlunsplit(urlsplit(dsn)._replace(path="/bench_audit"))
        home = Path(tmp)
        platform = await Platform.open(Settings(home=home, addr="127.0.0.1:0"), db, services=("audit",))
        async with platform.pool.acquire() as conn:
            for name in SERVICES:
                if name not in platform.stores:
                    await create_log(conn, name)
                    platform.stores[name] = EventStore(platform.pool, name, group_commit_max=8)
        fill_s = await fill(platform.stores["tracking"], total)
        print(f"filled {total:,} events in {fill_s:.1f} s")
        key = SigningKey.load_or_create(home)
        logs = [*SERVICES, "identity"]

        out = home / "server-side.jsonl"
        t0 = time.perf_counter()
        with out.open("wb") as fh:
            async for chunk in export_bundle(PlatformReader(platform), logs, key, Scope()):
                fh.write(chunk)
        export_s = time.perf_counter() - t0
        size = out.stat().st_size
        print(f"export (server side, to a file): {total / export_s:,.0f} events/s, {size / 1e6:.0f} MB")

        token = (await platform.ensure_admin_token()).read_text().strip()
        server = await start_server(platform, "127.0.0.1:0")
        grpc_out = home / "grpc.jsonl"

        def via_grpc() -> None:
            """`modelog audit export` as its own process, as a reviewer would run it."""
            env = {**os.environ, "MODELOG_URL": f"127.0.0.1:{server.port}", "MODELOG_TOKEN": token}
            cmd = [sys.executable, "-m", "modelog.cli.audit", "export", "--out", str(grpc_out)]
            subprocess.run(cmd, env=env, check=True, capture_output=True)

        t0 = time.perf_counter()
        await asyncio.to_thread(via_grpc)
        grpc_s = time.perf_counter() - t0
        print(f"export (`modelog audit export` process over gRPC): {total / grpc_s:,.0f} events/s")
        fan = await fanout(server.port, token, 100, 10_000)
        print(f"subscription fan-out: {fan}")
        await server.stop(0)

        t0 = time.perf_counter()
        result = verify_file(grpc_out, key.public)
        verify_s = time.perf_counter() - t0
        assert result.ok, result.reason
        print(f"verify (offline): {result.events / verify_s:,.0f} events/s")
        await platform.close()

    data = {
        "events": total,
        "bundle_bytes": size,
        "fill_seconds": round(fill_s, 2),
        "export_server_side": {"seconds": round(export_s, 2), "events_per_s": round(total / export_s)},
        "export_grpc_end_to_end": {
            "seconds": round(grpc_s, 2),
            "events_per_s": round(total / grpc_s),
            "note": "`modelog audit export` in its own process, 1 MB chunks, process start included",
        },
        "subscribe_fanout": fan,
        "verify_offline": {"seconds": round(verify_s, 2), "events_per_s": round(result.events / verify_s)},
        "goal_events_per_s": 100_000,
    }
    print(f"wrote {write_result('audit', data)}")
    return data


if __name__ == "__main__":
    asyncio.run(
        main(int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("AUDIT_BENCH_EVENTS", 1_000_000)))
    )
