"""No secret in any output: a `modelog up` on an external PostgreSQL whose DSN carries a password never
shows that password, nor a token secret, in what it prints (ready line, logs, exported spans), in
its log files, or in the command lines and environments of its process tree."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import psutil
import pytest

from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog.shared.settings import redact_dsn
from modelog_platform.embedded import free_port
from tests.procs import MODELOG, Up, env_for


async def _role_with_password(admin_dsn: str, role: str, password: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await conn.execute(f"CREATE DATABASE {database} OWNER {role}")
    finally:
        await conn.close()


async def _drop(admin_dsn: str, role: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await conn.execute(f"DROP ROLE IF EXISTS {role}")
    finally:
        await conn.close()


@pytest.fixture
def password_dsn(pg_dsn: str) -> Iterator[tuple[str, str]]:
    """(DSN with user and password, the password). The embedded server trusts its Unix socket, so
    the password is not checked there; it is still in the DSN string, which is what must not leak."""
    suffix = secrets.token_hex(4)
    role, database, password = f"r_{suffix}", f"d_{suffix}", f"pw{secrets.token_hex(12)}"
    asyncio.run(_role_with_password(pg_dsn, role, password, database))
    parts = urlsplit(pg_dsn)
    host = parts.netloc.rpartition("@")[2]
    dsn = urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}", path=f"/{database}"))
    try:
        yield dsn, password
    finally:
        asyncio.run(_drop(pg_dsn, role, database))


def _process_texts(up: Up) -> list[tuple[str, str]]:
    """(what, text): the command line of `modelog up` and of every process under it (what `ps`
    shows), and the children's environments (`ps e`; `modelog up`'s own is what the user gave it)."""
    top = psutil.Process(up.proc.pid)
    out = [(f"the command line of {top.name()}", " ".join(top.cmdline()))]
    for proc in up.descendants():
        try:
            out.append((f"the command line of {proc.name()}", " ".join(proc.cmdline())))
            out.append(
                (f"the environment of {proc.name()}", " ".join(f"{k}={v}" for k, v in proc.environ().items()))
            )
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.mark.slow
def test_no_password_or_token_secret_in_output_logs_spans_or_process_tree(
    password_dsn: tuple[str, str], modelog_home: Path
) -> None:
    dsn, password = password_dsn
    addr = f"127.0.0.1:{free_port()}"
    # Spans go to stdout (console exporter), so their attributes are part of what is checked.
    env = env_for(
        modelog_home, addr, MODELOG_PG_DSN=dsn, MODELOG_LOG_LEVEL="DEBUG", OTEL_TRACES_EXPORTER="console"
    )
    up = Up(env)
    try:
        ready = up.wait_for("modelog ready on", 90)
        assert redact_dsn(dsn) in ready and "***" in ready
        admin = (modelog_home / "admin-token").read_text().strip()
        internal = (modelog_home / "internal-token").read_text().strip()
        with grpc.insecure_channel(addr) as ch:
            stub = identity_pb2_grpc.IdentityStub(ch)
            assert stub.WhoAmI(
                identity_pb2.WhoAmIRequest(), metadata=[("authorization", f"Bearer {admin}")]
            ).actor
            with pytest.raises(grpc.RpcError):  # an error path, with its log line and span
                stub.WhoAmI(identity_pb2.WhoAmIRequest(), metadata=[("authorization", f"Bearer {admin}x")])
        processes = _process_texts(up)
        assert len(processes) >= 3, "expected modelog up and its embedded broker"
    finally:
        assert up.stop() == 0
    printed = "".join(up.output)
    assert '"name": "/modelog.identity.v1.Identity/WhoAmI"' in printed, "spans were not exported"
    logs = [p.read_text(errors="replace") for p in (modelog_home / "logs").rglob("*") if p.is_file()]
    for secret, what in (
        (password, "the DSN password"),
        (admin, "the admin token"),
        (internal, "the internal token"),
    ):
        assert secret not in printed, f"{what} was printed"
        for text in logs:
            assert secret not in text, f"{what} is in a log file"
        for where, text in processes:
            assert secret not in text, f"{what} is in {where}"


def test_unreachable_postgres_error_does_not_show_the_password(
    modelog_home: Path, kafka_bootstrap: str
) -> None:
    password = f"pw{secrets.token_hex(12)}"
    env = env_for(
        modelog_home,
        f"127.0.0.1:{free_port()}",
        MODELOG_PG_DSN=f"postgresql://someone:{password}@127.0.0.1:{free_port()}/x",
        MODELOG_KAFKA_BOOTSTRAP=kafka_bootstrap,
    )
    for args in (["up"], ["serve", "tracking"]):
        done = subprocess.run([*MODELOG, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "cannot reach PostgreSQL at postgresql://someone:***@" in done.stderr
        assert password not in done.stdout + done.stderr
