"""The embedded stack's children: they start, keep data, fail with readable messages, leave nothing behind."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from modelog_platform.embedded import EmbeddedBroker, EmbeddedError, EmbeddedPostgres, free_port


def postmasters(pgdata: Path) -> list[psutil.Process]:
    """Live (non-zombie) postmasters whose command line names this data directory."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        live = proc.info["status"] != psutil.STATUS_ZOMBIE
        if live and proc.info["name"] == "postgres" and str(pgdata) in cmdline:
            found.append(proc)
    return found


def fetch(dsn: str, query: str) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return [tuple(r) for r in await conn.fetch(query)]
        finally:
            await conn.close()

    return asyncio.run(run())


def execute(dsn: str, *statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def test_postgres_keeps_committed_rows_across_a_restart(tmp_path: Path) -> None:
    pgdata = tmp_path / "home" / "postgres"
    pg = EmbeddedPostgres(pgdata)
    dsn = pg.start()
    try:
        assert "/modelog?" in dsn
        execute(dsn, "CREATE TABLE kept (id int PRIMARY KEY)", "INSERT INTO kept VALUES (1), (2)")
        pg.stop()
        assert not pg.is_running()
        assert postmasters(pgdata) == []

        dsn = pg.start()
        assert fetch(dsn, "SELECT id FROM kept ORDER BY id") == [(1,), (2,)]
        assert fetch(dsn, "SHOW fsync") == [("on",)]
        assert fetch(dsn, "SHOW max_connections") == [("200",)]
    finally:
        pg.stop()
    assert postmasters(pgdata) == []
    assert (tmp_path / "home" / "logs" / "postgres.log").stat().st_size > 0


def test_postgres_refuses_a_data_dir_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # root ignores permission bits, but nobody can mkdir under a regular file
    with pytest.raises(EmbeddedError, match="MODELOG_HOME") as err:
        EmbeddedPostgres(blocker / "postgres").start()
    assert str(blocker / "postgres") in str(err.value)


def test_postgres_reports_the_log_when_the_server_exits_during_start(tmp_path: Path) -> None:
    pgdata = tmp_path / "postgres"
    pg = EmbeddedPostgres(pgdata)
    pg.start()
    pg.stop()
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\nnot_a_real_setting = 1\n")
    with pytest.raises(EmbeddedError, match="exited with code") as err:
        pg.start()
    assert "not_a_real_setting" in str(err.value)
    assert not pg.is_running()


def test_postgres_refuses_a_data_dir_another_postmaster_serves(tmp_path: Path) -> None:
    pgdata = tmp_path / "postgres"
    with EmbeddedPostgres(pgdata) as first:
        with pytest.raises(EmbeddedError, match=f"pid {first.pid}"):
            EmbeddedPostgres(pgdata).start()
        assert first.is_running()


def test_a_killed_supervisor_takes_its_postmaster_along(tmp_path: Path) -> None:
    pgdata = tmp_path / "postgres"
    script = (
        "import sys, time\nfrom pathlib import Path\n"
        "from modelog_platform.embedded import EmbeddedPostgres\n"
        f"pg = EmbeddedPostgres(Path({str(pgdata)!r}))\npg.start()\n"
        "print(pg.pid, flush=True)\ntime.sleep(600)\n"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert supervisor.stdout is not None
        postmaster = psutil.Process(int(supervisor.stdout.readline()))
    finally:
        supervisor.kill()
        supervisor.wait(10)
    psutil.wait_procs([postmaster], timeout=30)
    assert postmasters(pgdata) == []

    with EmbeddedPostgres(pgdata) as pg:
        assert fetch(pg.dsn, "SELECT 1") == [(1,)]


def test_broker_round_trips_a_message_and_stops_cleanly() -> None:
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    pid = broker.pid
    assert pid is not None

    async def round_trip() -> bytes:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait("embedded-test", b"hello", key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "embedded-test", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            message = await asyncio.wait_for(consumer.getone(), 20)
        finally:
            await consumer.stop()
        return bytes(message.value)

    try:
        assert asyncio.run(round_trip()) == b"hello"
    finally:
        broker.stop()
    assert not broker.is_running()
    assert not psutil.pid_exists(pid)


def test_broker_refuses_a_port_already_bound() -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(EmbeddedError, match=f"port {port} .* already in use"):
            EmbeddedBroker(port=port).start()


async def test_broker_starts_from_inside_a_running_event_loop() -> None:
    with EmbeddedBroker() as broker:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, acks="all")
        await producer.start()
        await producer.stop()
