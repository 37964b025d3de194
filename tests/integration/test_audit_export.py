"""Compliance export against a real platform, verified OFFLINE by `modelog audit verify` in a subprocess."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eventlog import EventStore, Metadata, NewEvent, create_log
from modelog import audit
from modelog._client import Connection
from modelog.shared.settings import SERVICES, Settings
from modelog_platform.app import Platform, Server, start_server
from tests.procs import env_for

AUDIT_CLI = [sys.executable, "-m", "modelog.cli.audit"]
"""The `modelog audit` group on its own (the same group `modelog audit` attaches)."""

pytestmark = pytest.mark.asyncio


class Stack:
    def __init__(self, platform: Platform, server: Server, admin: str, home: Path) -> None:
        self.platform, self.server, self.admin, self.home = platform, server, admin, home

    def conn(self) -> Connection:
        return Connection(f"127.0.0.1:{self.server.port}", self.admin)

    async def export(self, out: Path, **kw: object) -> Path:
        def run() -> Path:
            with self.conn() as c:
                return audit.export(out, connection=c, **kw)  # type: ignore[arg-type]

        return await asyncio.to_thread(run)


async def open_platform(dsn: str, home: Path) -> Platform:
    """The audit service alone, beside bare logs of the other services (no inline views that would
    validate payloads), so the tests can append synthetic events of any shape, as the registry will."""
    platform = await Platform.open(Settings(home=home, addr="127.0.0.1:0"), dsn, services=("audit",))
    async with platform.pool.acquire() as conn:
        for name in SERVICES:
            if name not in platform.stores:
                await create_log(conn, name)
                platform.stores[name] = EventStore(platform.pool, name)
    return platform


@pytest.fixture
async def stack(fresh_db: str, modelog_home: Path) -> AsyncIterator[Stack]:
    platform = await open_platform(fresh_db, modelog_home)
    path = await platform.ensure_admin_token()
    server = await start_server(platform, "127.0.0.1:0")
    yield Stack(platform, server, path.read_text().strip(), modelog_home)
    await server.stop(0)
    await platform.close()


async def seed(stack: Stack) -> None:
    """Tracking runs, and registry approvals appended as synthetic events (the registry's shapes)."""
    tracking = stack.platform.stores["tracking"]
    for i in range(20):
        await tracking.append(
            f"run-{i % 4}", None, [NewEvent("MetricsLogged", 1, f'{{"i":{i}}}')], Metadata(actor="alice")
        )
    registry = stack.platform.stores["registry"]
    steps = [
        ("ModelRegistered", {"model_id": "m1", "name": "churn"}, "alice"),
        ("TransitionRequested", {"request_id": "r1", "version": 1, "to_stage": "Production"}, "alice"),
        ("TransitionApproved", {"request_id": "r1", "version": 1, "by": "bob"}, "bob"),
        ("VersionStageChanged", {"version": 1, "from_stage": "None", "to_stage": "Production"}, "bob"),
    ]
    for etype, body, actor in steps:
        await registry.append("model-m1", None, [NewEvent(etype, 1, json.dumps(body))], Metadata(actor=actor))
    await registry.append(
        "model-m2", None, [NewEvent("ModelRegistered", 1, '{"model_id":"m2","name":"fraud"}')], Metadata()
    )


def offline(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The CLI with no server: MODELOG_URL names a dead address, the home is empty."""
    env = env_for(home, "127.0.0.1:1", MODELOG_URL="127.0.0.1:1")
    return subprocess.run([*AUDIT_CLI, *args[1:]], env=env, capture_output=True, text=True, timeout=120)


async def test_export_then_offline_verify_names_every_actor_and_approval(
    stack: Stack, tmp_path: Path
) -> None:
    await seed(stack)
    bundle = await stack.export(tmp_path / "audit.jsonl")
    key_file = stack.home / "audit-signing-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    with stack.conn() as c:
        pub = await asyncio.to_thread(audit.public_key, c)
    (tmp_path / "platform.pub").write_text(pub.pem)
    empty_home = tmp_path / "nohome"
    empty_home.mkdir()
    res = offline(
        "audit", "verify", str(bundle), "--public-key", str(tmp_path / "platform.pub"), home=empty_home
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK: 26 events" in res.stdout  # 20 tracking, 5 registry, the admin token (identity)
    for word in ("alice", "bob", "registry.TransitionApproved", "TransitionRequested", "VersionStageChanged"):
        assert word in res.stdout
    res = offline("audit", "verify", str(bundle), "--json", home=empty_home)
    data = json.loads(res.stdout)
    assert data["ok"] and not data["key_pinned"]
    assert [a["actor"] for a in data["summary"]["production_changes"]] == ["bob"]
    assert data["manifest"]["tracking"] == {
        "first": 1,
        "last": 20,
        "count": 20,
        "disclosed": 20,
        "anchor": "00" * 32,
        "head": (await stack.platform.stores["tracking"].head())[1].hex(),
    }


async def test_offline_verify_names_the_tampered_position(stack: Stack, tmp_path: Path) -> None:
    await seed(stack)
    bundle = await stack.export(tmp_path / "audit.jsonl")
    lines = bundle.read_bytes().splitlines(keepends=True)
    i = next(i for i, raw in enumerate(lines) if raw.startswith(b'["e",7,"run-2"'))
    lines[i] = lines[i].replace(b'{\\"i\\":6}', b'{\\"i\\":9}')
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(lines))
    res = offline("audit", "verify", str(bad), home=tmp_path)
    assert res.returncode == 1
    assert "tracking position 7" in res.stdout, res.stdout


async def test_a_bundle_from_another_platform_key_fails_when_pinned(stack: Stack, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from modelog.shared.audit.keys import public_pem
    from modelog_services.audit.signing import SigningKey

    await seed(stack)
    bundle = await stack.export(tmp_path / "audit.jsonl")
    other = tmp_path / "other.pub"
    other.write_text(public_pem(SigningKey(Ed25519PrivateKey.generate()).public))
    res = offline("audit", "verify", str(bundle), "--public-key", str(other), home=tmp_path)
    assert res.returncode == 1 and "not by the expected key" in res.stdout


async def test_time_range_is_anchored_and_model_filter_discloses_only_that_model(
    stack: Stack, tmp_path: Path
) -> None:
    await seed(stack)
    mid = await stack.platform.stores["tracking"].read_log(11, 1)
    start = mid[0].recorded_at
    end = datetime.now(UTC) + timedelta(hours=1)
    bundle = await stack.export(tmp_path / "range.jsonl", from_time=start, to_time=end)
    out = audit.verify(bundle)
    assert out.ok, out.reason
    assert out.manifest["tracking"]["first"] <= 11
    assert out.manifest["tracking"]["anchor"] != "00" * 32
    only = await stack.export(tmp_path / "churn.jsonl", model="churn")
    out = audit.verify(only)
    assert out.ok, out.reason
    assert out.manifest["registry"]["disclosed"] == 4 and out.manifest["registry"]["count"] == 5
    assert out.manifest["tracking"]["disclosed"] == 0 and out.manifest["tracking"]["count"] == 20
    assert set(out.summary["types"]) == {
        "registry.ModelRegistered",
        "registry.TransitionRequested",
        "registry.TransitionApproved",
        "registry.VersionStageChanged",
    }


async def test_exporting_an_unknown_model_is_not_found(stack: Stack, tmp_path: Path) -> None:
    from modelog import errors

    await seed(stack)
    with pytest.raises(errors.NotFound) as info:
        await stack.export(tmp_path / "none.jsonl", model="no-such-model")
    assert "no-such-model" in info.value.message
    assert not (tmp_path / "none.jsonl").exists()
