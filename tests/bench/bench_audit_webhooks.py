"""Webhook delivery latency under load: events appended at a steady rate, delivered by the audit
service's dispatcher to webhooks served by a local receiver in another process (goal: p99 < 200 ms).

Latency = the receiver's clock when the request arrived minus the producer's clock when the append
committed (same machine, wall clock). Two loads: every webhook gets every event (rate x webhooks
deliveries/s), and the events split evenly between the webhooks by stream (rate deliveries/s).

`python -m tests.bench.bench_audit_webhooks [rate] [seconds] [webhooks]` ->
tests/bench/results/audit_webhooks.json
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from eventlog import CommandPath, EventStore, Metadata, NewEvent, create_log
from modelog_platform.app import Platform
from modelog_platform.settings import SERVICES, Settings
from modelog_services.audit import webhook_store as db
from modelog_services.audit.dispatcher import Dispatcher, Policy
from modelog_services.audit.domain import CreateWebhook, stream_id, webhook
from modelog_services.audit.events import WebhookFilterValue, registry
from modelog_services.audit.main import LOGS, PlatformReader
from modelog_services.audit.webhook_http import fingerprint, generate_secret
from tests.bench.common import percentile, postgres, write_result

RECEIVER = r"""
import asyncio, re, sys, time
POS = re.compile(rb'"position":"(\d+)"')
out = []

async def handle(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        path = line.split(b" ")[1].decode()
        length = 0
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b""):
                break
            k, _, v = h.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        body = await reader.readexactly(length)
        out.append(f"{path} {POS.search(body).group(1).decode()} {time.time():.6f}")
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    writer.close()

async def flush():
    while True:
        await asyncio.sleep(0.05)
        if out:
            sys.stdout.write("\n".join(out) + "\n")
            sys.stdout.flush()
            out.clear()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    asyncio.create_task(flush())
    await server.serve_forever()

asyncio.run(main())
"""


class Receiver:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])
        self.hits: list[tuple[str, int, float]] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            path, pos, t = line.split()
            self.hits.append((path, int(pos), float(t)))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def _database(dsn: str) -> str:
    name = f"bench_hooks_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def scenario(dsn: str, name: str, rate: int, seconds: float, hooks: int, split: bool) -> dict[str, Any]:
    db_dsn = await _database(dsn)
    home = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    settings = Settings(home=home, addr="127.0.0.1:0", webhook_allow="127.0.0.1")
    platform = await Platform.open(settings, db_dsn, services=("audit",))
    async with platform.pool.acquire() as conn:
        for log in SERVICES:
            if log not in platform.stores:
                await create_log(conn, log)
                platform.stores[log] = EventStore(platform.pool, log)
    receiver = Receiver()
    try:
        commands = CommandPath(platform.stores["audit"], events=registry)
        for i in range(hooks):
            flt = WebhookFilterValue(services=("tracking",), streams=(f"s{i}-*",) if split else ())
            secret = generate_secret()
            wid = f"bench{i}"
            await db.put_secret(platform.pool, wid, fingerprint(secret), secret)
            url = f"http://127.0.0.1:{receiver.port}/{wid}"
            command = CreateWebhook(wid, url, flt, "", fingerprint(secret), {"tracking": 0})
            await commands.execute(webhook, stream_id(wid), command, Metadata())
        dispatcher = Dispatcher(
            platform.pool, platform.stores, PlatformReader(platform), LOGS, Policy.of(settings)
        )
        task = asyncio.create_task(dispatcher.run())
        await asyncio.wait_for(dispatcher.leader.wait(), 10)
        await asyncio.sleep(0.5)  # workers connected and idle

        store = platform.stores["tracking"]
        committed: dict[int, float] = {}
        total = int(rate * seconds)

        async def one(i: int) -> None:
            r = await store.append(
                f"s{i % hooks}-{i % 50}", None, [NewEvent("MetricsLogged", 1, f'{{"i":{i}}}')], Metadata()
            )
            committed[r.first_position] = time.time()

        t0 = time.perf_counter()
        pending = []
        for i in range(total):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one(i)))
        await asyncio.gather(*pending)
        produce_s = time.perf_counter() - t0
        expected = total if split else total * hooks
        deadline = time.monotonic() + 120
        while len(receiver.hits) < expected and time.monotonic() < deadline:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.1)
        drain_s = time.perf_counter() - t0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        hits = list(receiver.hits)
        lat = sorted((t - committed[pos]) * 1000 for _, pos, t in hits if pos in committed)
        per_hook: dict[str, list[int]] = {}
        for path, pos, _ in hits:
            per_hook.setdefault(path, []).append(pos)
        in_order = all(seq == sorted(seq) for seq in per_hook.values())
        return {
            "scenario": name,
            "events_per_s": rate,
            "seconds": seconds,
            "webhooks": hooks,
            "deliveries_expected": expected,
            "deliveries_received": len(hits),
            "deliveries_per_s": round(len(hits) / drain_s, 1),
            "produce_s": round(produce_s, 2),
            "all_received_after_s": round(drain_s, 2),
            "in_order_per_webhook": in_order,
            "latency_ms": {
                "p50": round(percentile(lat, 0.50), 1),
                "p90": round(percentile(lat, 0.90), 1),
                "p99": round(percentile(lat, 0.99), 1),
                "max": round(lat[-1], 1) if lat else None,
            },
            "goal_p99_ms": 200,
        }
    finally:
        receiver.stop()
        await platform.close()
        shutil.rmtree(home, ignore_errors=True)


async def main(rate: int = 500, seconds: float = 10.0, hooks: int = 5) -> dict[str, Any]:
    with postgres() as dsn:
        split = await scenario(dsn, "split: each event to one of the webhooks", rate, seconds, hooks, True)
        print(json.dumps(split, indent=2))
        every = await scenario(dsn, "fan-out: every event to every webhook", rate, seconds, hooks, False)
        print(json.dumps(every, indent=2))
    data = {
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": "producer, dispatcher and PostgreSQL client in one process; receiver in another; "
        "the machine (2 cores) is shared with other work",
        "results": [split, every],
    }
    print(f"wrote {write_result('audit_webhooks', data)}")
    return data


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            int(args[0]) if args else 500,
            float(args[1]) if len(args) > 1 else 10.0,
            int(args[2]) if len(args) > 2 else 5,
        )
    )
