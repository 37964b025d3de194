"""`modelog up` as a real subprocess: ready line, health, reflection, clean stop, restart keeps the log."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from modelog._gen.eventlog.v1 import eventlog_pb2, eventlog_pb2_grpc
from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog_platform.embedded import free_port
from tests.procs import MODELOG, Up, env_for


@pytest.fixture
def addr() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def up_process(modelog_home: Path, addr: str) -> Iterator[Up]:
    up = Up(env_for(modelog_home, addr))
    yield up
    if up.proc.poll() is None:
        up.proc.kill()
        up.proc.wait()


def _token(home: Path) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {(home / 'admin-token').read_text().strip()}")]


@pytest.mark.slow
def test_up_serves_stops_cleanly_and_restarts_with_its_log(
    up_process: Up, modelog_home: Path, addr: str
) -> None:
    ready = up_process.wait_for("modelog ready on", 60)
    assert addr in ready and str(modelog_home / "admin-token") in ready
    children = up_process.descendants()
    assert children, "expected embedded postgres and broker child processes"
    with grpc.insecure_channel(addr) as ch:
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""))
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        [resp] = list(
            refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        )
        names = {s.name for s in resp.list_services_response.service}
        assert {
            "modelog.eventlog.v1.EventLog",
            "modelog.identity.v1.Identity",
            "grpc.health.v1.Health",
        } <= names
        # The CLI finds the server and the admin token with no configuration beyond MODELOG_HOME.
        cli_env = env_for(modelog_home, addr)
        made = subprocess.run(
            [*MODELOG, "token", "create", "ci", "--json"],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        secret = json.loads(made.stdout)["secret"]
        who = identity_pb2_grpc.IdentityStub(ch).WhoAmI(
            identity_pb2.WhoAmIRequest(), metadata=[("authorization", f"Bearer {secret}")]
        )
        assert who.actor == "ci"
        head = eventlog_pb2_grpc.EventLogStub(ch).Head(
            eventlog_pb2.HeadRequest(service="identity"), metadata=_token(modelog_home)
        )
        assert head.position == 3  # admin, modelog-internal, ci

    assert up_process.stop() == 0
    up_process.wait_for("modelog stopping", 5)
    [stopping] = [line for line in up_process.output if line.startswith("modelog stopping")]
    assert "gc pauses: gen0 " in stopping and "startup objects frozen" in stopping, stopping
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {[p.info for p in alive]}"
    assert (modelog_home / "admin-token").stat().st_mode & 0o777 == 0o600

    again = Up(env_for(modelog_home, addr))
    try:
        again.wait_for("modelog ready on", 60)
        with grpc.insecure_channel(addr) as ch:
            stub = eventlog_pb2_grpc.EventLogStub(ch)
            head2 = stub.Head(eventlog_pb2.HeadRequest(service="identity"), metadata=_token(modelog_home))
            assert (head2.position, head2.hash) == (3, head.hash)
            assert stub.Verify(
                eventlog_pb2.VerifyRequest(service="identity"), metadata=_token(modelog_home)
            ).ok
    finally:
        assert again.stop() == 0


def _run_up(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MODELOG, "up"], env=env, capture_output=True, text=True, timeout=timeout)


def test_port_in_use_is_a_clear_error(modelog_home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = f"127.0.0.1:{s.getsockname()[1]}"
        result = _run_up(env_for(modelog_home, taken))
    assert result.returncode == 2
    assert "cannot listen on" in result.stderr and "Traceback" not in result.stderr + result.stdout


def test_unwritable_home_is_a_clear_error(tmp_path: Path, addr: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _run_up(env_for(blocker / "home", addr))
    assert result.returncode == 2
    assert "not writable" in result.stderr and "MODELOG_HOME" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_external_postgres_is_a_clear_error(modelog_home: Path, addr: str) -> None:
    result = _run_up(
        env_for(
            modelog_home,
            addr,
            MODELOG_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/x",
            MODELOG_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
        )
    )
    assert result.returncode == 2
    assert "cannot reach" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_external_kafka_is_a_clear_error(modelog_home: Path, addr: str, pg_dsn: str) -> None:
    result = _run_up(
        env_for(modelog_home, addr, MODELOG_PG_DSN=pg_dsn, MODELOG_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")
    )
    assert result.returncode == 2
    assert "cannot reach Kafka" in result.stderr and "Traceback" not in result.stderr
    assert not (modelog_home / "postgres").exists(), "no embedded postgres with an external DSN"


def test_cli_reports_an_unreachable_server_in_one_line(modelog_home: Path, addr: str) -> None:
    result = subprocess.run(
        [*MODELOG, "events", "heads"],
        env=env_for(modelog_home, addr),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr and "modelog up" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_tails_events_and_lists_projections(up_process: Up, modelog_home: Path, addr: str) -> None:
    up_process.wait_for("modelog ready on", 60)
    env = env_for(modelog_home, addr)
    tail = Up(env, ["events", "tail", "--service", "identity", "--from", "1", "--json"])
    try:
        first = json.loads(tail.wait_for('"type": "TokenIssued"', 30))
        assert first["service"] == "identity" and first["position"] == 1 and first["actor"] == "system"
        # Live: an event committed after the tail started shows up too.
        subprocess.run(
            [*MODELOG, "token", "create", "live-one"], env=env, check=True, capture_output=True, timeout=30
        )
        live = json.loads(tail.wait_for('"live-one"', 30))
        assert live["actor"] == "admin" and live["payload"]["name"] == "live-one"
    finally:
        tail.proc.kill()
        tail.proc.wait()
    listed = subprocess.run(
        [*MODELOG, "admin", "projections", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["tokens"]["mode"] == "inline" and rows["audit_trail"]["mode"] == "async"
    assert {s["source"] for s in rows["audit_trail"]["sources"]} >= {"tracking", "identity"}
    rebuilt = subprocess.run(
        [*MODELOG, "admin", "rebuild", "tokens", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(rebuilt.stdout)["events"] >= 3
    missing = subprocess.run(
        [*MODELOG, "admin", "rebuild", "nope"], env=env, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr and "audit_trail" in missing.stderr
