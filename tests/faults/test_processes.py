"""Processes dying: kill -9 of a service process, a broker dying under `modelog up`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from eventlog import EventStore, Metadata, NewEvent
from modelog.shared.settings import PLATFORM_LOGS, SERVICES
from modelog_platform.embedded import free_port
from tests.procs import MODELOG, Up, env_for
from tests.waiting import wait_until, wait_until_async


class Fleet:
    """One `modelog serve <service>` process per service, as in production."""

    def __init__(self, dsn: str, bootstrap: str, home: Path) -> None:
        self.addrs = {s: f"127.0.0.1:{free_port()}" for s in SERVICES}
        peers = ",".join(f"{s}={a}" for s, a in self.addrs.items())
        self.env = env_for(
            home,
            "",
            MODELOG_PG_DSN=dsn,
            MODELOG_KAFKA_BOOTSTRAP=bootstrap,
            MODELOG_TOPIC_PREFIX=f"f{uuid.uuid4().hex[:8]}",
            MODELOG_PEERS=peers,
        )
        self.procs: dict[str, Up] = {}

    def start(self, service: str) -> None:
        env = {**self.env, "MODELOG_ADDR": self.addrs[service]}
        self.procs[service] = Up(env, ["serve", service])
        self.procs[service].wait_for("modelog ready on", 60)

    def kill9(self, service: str) -> None:
        proc = self.procs.pop(service).proc
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for up in self.procs.values():
            if up.proc.poll() is None:
                up.proc.send_signal(signal.SIGTERM)
        for up in self.procs.values():
            try:
                up.proc.wait(20)
            except subprocess.TimeoutExpired:
                up.proc.kill()


@pytest.fixture
async def fleet(fresh_db: str, kafka_bootstrap: str, modelog_home: Path) -> AsyncIterator[Fleet]:
    f = Fleet(fresh_db, kafka_bootstrap, modelog_home)
    for service in SERVICES:  # one at a time: the first creates the shared tokens
        f.start(service)
    yield f
    f.stop_all()


async def trail_complete(pool: asyncpg.Pool) -> bool:
    expected = set()
    for log in (*SERVICES, *PLATFORM_LOGS):
        head = await pool.fetchval(f"SELECT coalesce(max(position), 0) FROM {log}.events")
        expected |= {(log, p) for p in range(1, head + 1)}
    rows = await pool.fetch("SELECT service, position FROM audit.trail")
    got = [(r[0], r[1]) for r in rows]
    return len(got) == len(set(got)) and set(got) == expected


@pytest.mark.slow
@pytest.mark.asyncio
async def test_kill_9_of_service_processes_mid_stream_converges(fleet: Fleet, pool: asyncpg.Pool) -> None:
    tracking = EventStore(pool, "tracking")  # a writer of the tracking log, like another replica

    async def write(n: int, tag: str) -> None:
        for i in range(n):
            await tracking.append(
                f"run-{tag}-{i % 9}", None, [NewEvent("Thing", 1, f'{{"i":{i}}}')], Metadata(actor="writer")
            )

    writer = asyncio.create_task(write(600, "a"))
    await wait_until_async(lambda: _count(pool, "tracking", 100), 30, "some events")
    fleet.kill9("audit")  # the projection dies mid-stream
    fleet.kill9("tracking")  # and so does the tracking log's relay
    await wait_until_async(lambda: _count(pool, "tracking", 300), 30, "more events while they are down")
    await asyncio.to_thread(fleet.start, "tracking")
    await asyncio.to_thread(fleet.start, "audit")
    await writer
    await write(50, "b")
    await wait_until_async(lambda: trail_complete(pool), 90, "audit trail == every log, exactly once")
    await tracking.close()


async def _count(pool: asyncpg.Pool, log: str, n: int) -> bool:
    return bool(await pool.fetchval(f"SELECT count(*) >= $1 FROM {log}.events", n))


@pytest.mark.slow
def test_up_restarts_a_broker_that_dies(modelog_home: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    up = Up(env_for(modelog_home, addr))
    try:
        up.wait_for("modelog ready on", 60)
        broker = next(p for p in up.descendants() if "tansu" in " ".join(p.cmdline()))
        os.kill(broker.pid, signal.SIGKILL)
        up.wait_for("restarted broker", 30)
        assert any("tansu" in " ".join(p.cmdline()) for p in up.descendants())
        cli_env = env_for(modelog_home, addr)
        subprocess.run(
            [*MODELOG, "token", "create", "after-restart"],
            env=cli_env,
            check=True,
            capture_output=True,
            timeout=30,
        )

        def lag_zero() -> bool:
            out = subprocess.run(
                [*MODELOG, "admin", "projections", "--json"],
                env=cli_env,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            rows = {r["name"]: r for r in json.loads(out)}
            return bool(rows["audit_trail"]["lag"] == 0 and rows["tokens"]["lag"] == 0)

        wait_until(lag_zero, 60, "the projections to catch up after the broker restart", every=0.2)

        # The database dies too (kill -9 of the postmaster): restarted, recovered, serving again.
        postmaster = next(p for p in up.descendants() if p.name() == "postgres" and "-D" in p.cmdline())
        os.kill(postmaster.pid, signal.SIGKILL)
        up.wait_for("restarted postgres", 60)

        def token_made() -> bool:
            made = subprocess.run(
                [*MODELOG, "token", "create", "after-db-restart"],
                env=cli_env,
                capture_output=True,
                timeout=30,
            )
            assert made.returncode == 0, made.stderr
            return True

        wait_until(
            token_made, 60, "a token made after the database restart", ignoring=(AssertionError,), every=0.5
        )
    finally:
        assert up.stop() == 0
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if str(modelog_home) in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftovers
