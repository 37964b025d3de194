"""`modelog up --workers 2`: two serving processes on one port and a bus worker; a serving worker and
the bus worker killed under load lose nothing."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import psutil
import pytest

import modelog
from modelog_platform.embedded import free_port
from tests.faults.test_processes import trail_complete
from tests.procs import Up, env_for
from tests.waiting import wait_until, wait_until_async

RUNS_PER_CLIENT = 120

# One client process (its own TCP connection, so the kernel may hand it to either worker): runs
# started, a param and a metric logged, finished; "ack <id>" printed once the finish is acknowledged.
CLIENT = """
import sys, modelog
c = modelog.connect()
with open(sys.argv[2], "w") as out:
    for i in range(int(sys.argv[1])):
        run = c.start_run("workers", params={"i": i})
        run.log_metric("m", float(i), step=0)
        run.finish()
        print("ack", run.id, file=out, flush=True)
"""


def _worker_pids(line: str) -> tuple[list[int], int]:
    """The serving workers' pids and the bus worker's."""
    found = re.search(r"workers: (\d+) \(pids ([\d,]+)\) \+ bus worker \(pid (\d+)\)", line)
    assert found, line
    return [int(p) for p in found.group(2).split(",")], int(found.group(3))


def _clients_on(pid: int, port: int) -> int:
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def _views_converge(dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        # The async views converge (the victim may have owned relays and projections).
        await wait_until_async(lambda: trail_complete(pool), 90, "audit trail == every log, once")
    finally:
        await pool.close()


@pytest.mark.slow
def test_kill_9_of_one_worker_under_load_loses_nothing_acknowledged(modelog_home: Path) -> None:
    port = free_port()
    env = env_for(modelog_home, f"127.0.0.1:{port}")
    up = Up(env, ["up", "--workers", "2"])
    try:
        line = up.wait_for("modelog ready on", 120)
        pids, bus = _worker_pids(line)
        assert len({*pids, bus}) == 3 and all(psutil.pid_exists(p) for p in (*pids, bus))
        dsn = re.search(r"postgres: (\S+)", line)
        assert dsn
        token = (modelog_home / "admin-token").read_text().strip()
        client_env = {**env, "MODELOG_URL": f"127.0.0.1:{port}", "MODELOG_TOKEN": token}
        client_env["MODELOG_HOME"] = str(modelog_home / "client")
        acks = [modelog_home / f"acks-{i}" for i in range(4)]
        clients = [
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, str(RUNS_PER_CLIENT), str(path)],
                env=client_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for path in acks
        ]

        def loaded() -> bool:  # every client has runs acknowledged, and is mid-load
            return all(p.exists() and len(p.read_text().splitlines()) >= 10 for p in acks)

        wait_until(loaded, 60, "the clients to connect")
        victim = max(pids, key=lambda p: _clients_on(p, port))
        assert _clients_on(victim, port) > 0
        os.kill(victim, signal.SIGKILL)
        # And the bus worker: the relays and projections it ran resume in its successor.
        os.kill(bus, signal.SIGKILL)
        up.wait_for(f"restarted worker {pids.index(victim) + 1}", 90)
        up.wait_for("restarted bus worker", 90)

        acked: list[str] = []
        for c, path in zip(clients, acks, strict=True):
            _, err = c.communicate(timeout=240)
            assert c.returncode == 0, err[-3000:]
            acked += [w.split()[1] for w in path.read_text().splitlines()]
        assert len(acked) == 4 * RUNS_PER_CLIENT

        client = modelog.connect(f"127.0.0.1:{port}", token)
        try:
            runs = {r.id: r for r in client.search_runs("workers", max_results=10_000)}
            # Every acknowledged run is there, once, finished, its metric logged once (retries replayed).
            assert set(acked) <= set(runs) and len(runs) == len(acked)
            assert {runs[r].status for r in acked} == {"FINISHED"}
            assert {client.get_run(r).metric_summaries["m"]["count"] for r in acked} == {1}
        finally:
            client.close()
        asyncio.run(_views_converge(dsn.group(1)))
    finally:
        assert up.stop() == 0
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if str(modelog_home) in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftovers
