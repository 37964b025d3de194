"""`modelog up` creates the signing key on first start; the CLI exports, and verifies with no server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import modelog  # noqa: F401 - the SDK must import beside the CLI
from modelog_platform.embedded import free_port
from tests.procs import Up, env_for

AUDIT_CLI = [sys.executable, "-m", "modelog.cli.audit"]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AUDIT_CLI, *args], env=env, capture_output=True, text=True, timeout=180)


def test_export_from_a_running_stack_verifies_offline_against_its_public_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    addr = f"127.0.0.1:{free_port()}"
    up = Up(env_for(home, addr))
    try:
        up.wait_for("modelog ready on", 90)
        key = home / "audit-signing-key.pem"
        assert key.stat().st_mode & 0o777 == 0o600
        client = env_for(
            tmp_path / "client",
            addr,
            MODELOG_URL=addr,
            MODELOG_TOKEN=(home / "admin-token").read_text().strip(),
        )
        pub = run(["public-key"], client)
        assert pub.returncode == 0 and "BEGIN PUBLIC KEY" in pub.stdout, pub.stderr
        (tmp_path / "platform.pub").write_text(pub.stdout)
        out = run(["export", "--out", str(tmp_path / "bundle.jsonl")], client)
        assert out.returncode == 0, out.stderr
    finally:
        assert up.stop() == 0
    dead = env_for(tmp_path / "nowhere", "127.0.0.1:1", MODELOG_URL="127.0.0.1:1")
    res = run(
        ["verify", str(tmp_path / "bundle.jsonl"), "--public-key", str(tmp_path / "platform.pub")], dead
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK: 2 events" in res.stdout and "identity.TokenIssued" in res.stdout  # admin + internal
