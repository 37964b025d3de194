"""Faults during load, against a real `modelog up`: nothing acknowledged is lost, nothing retried is
duplicated, and the views equal a rebuild from the log afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from pathlib import Path
from urllib.parse import quote

import asyncpg
import grpc
import psutil
import pytest

from eventlog import EventStore
from eventlog.projection import Projection
from modelog._gen.admin.v1 import admin_pb2, admin_pb2_grpc
from modelog._gen.eventlog.v1 import eventlog_pb2, eventlog_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as pb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog.shared.settings import PLATFORM_LOGS, SERVICES, Settings
from modelog_platform import identity
from modelog_platform.access import AccessView
from modelog_platform.embedded import DATABASE, PG_PORT, free_port
from modelog_services import spec
from tests.contracts import assert_rebuild_equals_live
from tests.procs import Up, env_for
from tests.waiting import wait_until, wait_until_async

BATCHES, POINTS = 120, 50
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}


def _md(home: Path, key: str | None = None) -> list[tuple[str, str]]:
    md = [("authorization", f"Bearer {(home / 'admin-token').read_text().strip()}")]
    return md + ([("idempotency-key", key)] if key else [])


def _batch(run_id: str, i: int) -> pb.MetricBatch:
    steps = [i * POINTS + j for j in range(POINTS)]
    return pb.MetricBatch(
        run_id=run_id,
        keys=["loss"] * POINTS,
        values=[float(s) for s in steps],
        steps=steps,
        timestamps_ms=[1_700_000_000_000 + s for s in steps],
        idempotency_key=f"batch-{i}",
    )


def _view(stub: tracking_pb2_grpc.TrackingStub, home: Path, run_id: str) -> tuple[bytes, list[int]]:
    run = stub.GetRun(pb.GetRunRequest(run_id=run_id), metadata=_md(home), timeout=30).run
    history = stub.GetMetricHistory(
        pb.GetMetricHistoryRequest(run_id=run_id, key="loss"), metadata=_md(home), timeout=30
    )
    return run.SerializeToString(deterministic=True), list(history.steps)


def _embedded_dsn(home: Path) -> str:
    """The DSN `modelog up` gives its own embedded PostgreSQL (a Unix socket beside its data)."""
    pgdata = Settings(home=home).pgdata.absolute()
    sock = pgdata
    if len(os.fsencode(pgdata / f".s.PGSQL.{PG_PORT}")) > 107:  # as EmbeddedPostgres._socket_dir
        sock = Path("/tmp") / f"modelog-pg-{hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:16]}"
    return f"postgresql://postgres@/{DATABASE}?host={quote(str(sock), safe='/')}&port={PG_PORT}"


async def _every_projection_equals_a_rebuild(home: Path) -> None:
    """Every service's projections, inline and fed over the bus, and the platform's own views: each
    rebuilt from the log into shadow tables equals what the running platform kept, once caught up."""
    pool = await asyncpg.create_pool(_embedded_dsn(home), min_size=1, max_size=4)
    try:
        logs = [*SERVICES, *PLATFORM_LOGS]
        stores = {log: EventStore(pool, log) for log in logs}
        projections = [identity.TokensView(), AccessView()]
        for name in SERVICES:
            s = spec(name)
            projections += [*s.inline_projections, *s.projections]

        async def equal(projection: Projection) -> bool:
            await assert_rebuild_equals_live(pool, projection, stores, may_be_empty=projection.tables)
            return True

        for projection in projections:
            # Views fed over the bus may still be catching up after the fault: equal within a deadline.
            await wait_until_async(
                lambda projection=projection: equal(projection),  # type: ignore[misc]
                60,
                f"{projection.name} to equal its rebuild",
                ignoring=(AssertionError,),
            )
    finally:
        await pool.close()


def _child(up: Up, name: str) -> psutil.Process:
    """The embedded part `modelog up` runs as its direct child: the postmaster or the broker."""
    found = [c for c in psutil.Process(up.proc.pid).children() if name in " ".join(c.cmdline())]
    assert len(found) == 1, [c.cmdline() for c in psutil.Process(up.proc.pid).children()]
    return found[0]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["server", "postgres", "broker"])
def test_a_fault_mid_stream_loses_nothing_acknowledged_and_duplicates_nothing_retried(
    tmp_path: Path, fault: str
) -> None:
    """kill -9 of the serving process (then a restart by hand), or of its PostgreSQL or its broker
    (which `modelog up` restarts itself), while a client logs batches with idempotency keys."""
    home, addr = tmp_path / "home", f"127.0.0.1:{free_port()}"
    home.mkdir()
    up = Up(env_for(home, addr))
    up.wait_for("modelog ready on", 90)
    channel = grpc.insecure_channel(addr)
    stub = tracking_pb2_grpc.TrackingStub(channel)
    run_id = stub.StartRun(
        pb.StartRunRequest(experiment_name="faults", create_experiment=True),
        metadata=_md(home, "start"),
        timeout=30,
    ).run.info.run_id

    acknowledged: set[int] = set()
    faulted = threading.Event()

    def load() -> None:
        """Logs every batch, retrying with its idempotency key until the server acknowledges it."""
        for i in range(BATCHES):
            while True:
                try:
                    stub.LogMetricsBatch(_batch(run_id, i), metadata=_md(home), timeout=5)
                    break
                except grpc.RpcError as exc:
                    if exc.code() not in RETRYABLE:
                        raise
                    faulted.wait(0.2)  # a part is down or restarting: try again shortly
            acknowledged.add(i)

    writer = threading.Thread(target=load, daemon=True)
    writer.start()
    wait_until(lambda: len(acknowledged) >= BATCHES // 3, 60, "a third of the batches acknowledged")
    serving = up
    if fault == "server":
        children = up.descendants()
        up.proc.kill()  # with batches in flight
        up.proc.wait(30)
        faulted.set()
        _gone, alive = psutil.wait_procs(children, timeout=30)  # its postgres and broker go with it
        assert not alive, f"left behind: {alive}"
        serving = Up(env_for(home, addr))
        serving.wait_for("modelog ready on", 90)
    else:
        _child(up, fault).kill()
        faulted.set()
        serving.wait_for(f"modelog: restarted {fault}", 90)
    before_fault = set(acknowledged)
    try:
        writer.join(180)
        assert not writer.is_alive(), "the writer did not finish after the fault"
        assert before_fault <= acknowledged == set(range(BATCHES))

        # Every acknowledged point is there once: retried batches were replayed, not appended again.
        run, steps = _view(stub, home, run_id)
        assert steps == list(range(BATCHES * POINTS))
        log = eventlog_pb2_grpc.EventLogStub(channel)
        assert log.Verify(eventlog_pb2.VerifyRequest(service="tracking"), metadata=_md(home), timeout=60).ok

        # The views equal a rebuild of them from the log.
        admin = admin_pb2_grpc.AdminStub(channel)
        for name in ("tracking_runs", "tracking_experiments"):
            admin.RebuildProjection(
                admin_pb2.RebuildProjectionRequest(name=name), metadata=_md(home), timeout=300
            )
        assert _view(stub, home, run_id) == (run, steps)
        asyncio.run(_every_projection_equals_a_rebuild(home))
    finally:
        channel.close()
        assert serving.stop() == 0
