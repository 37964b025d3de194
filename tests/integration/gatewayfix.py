"""A real `modelog up` with its HTTP surface, and the stock MLflow client run against it.

The MLflow client runs in its own venv (MLFLOW_PYTHON), as a user's training script would: a
separate process speaking HTTP, never imported into the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelog_platform.embedded import free_port
from tests.procs import MLFLOW_PYTHON, MODELOG, Up, env_for


@dataclass(frozen=True)
class Platform:
    addr: str
    http: str
    home: Path
    token: str

    def cli(self, *args: str) -> str:
        """`modelog ARGS` as the admin, against this platform."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOG_")}
        env.update(MODELOG_URL=self.addr, MODELOG_TOKEN=self.token, MODELOG_HOME=str(self.home / "cli"))
        res = subprocess.run([*MODELOG, *args], env=env, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise AssertionError(f"modelog {' '.join(args)} failed: {res.stdout}{res.stderr}")
        return res.stdout

    def new_token(self, name: str, role: str) -> str:
        return str(json.loads(self.cli("token", "create", name, "--role", role, "--json"))["secret"])

    def heads(self) -> dict[str, int]:
        """Every service's log head: equal before and after a refused call means nothing was written."""
        import grpc

        from modelog._gen.eventlog.v1 import eventlog_pb2, eventlog_pb2_grpc

        with grpc.insecure_channel(self.addr) as ch:
            logs = eventlog_pb2_grpc.EventLogStub(ch).ListLogs(
                eventlog_pb2.ListLogsRequest(), metadata=[("authorization", f"Bearer {self.token}")]
            )
            return {log.service: log.position for log in logs.logs}

    def mlflow(
        self,
        script: str,
        *,
        token: str | None = None,
        timeout: float = 180,
        python: Path = MLFLOW_PYTHON,
        **env: str,
    ) -> dict:
        """Run `script` with the stock client (MLflow 3 unless `python` names another) pointed at
        us; it prints one JSON object last."""
        return run_mlflow(script, self.http, token or self.token, timeout=timeout, python=python, **env)


def run_mlflow(
    script: str, uri: str, token: str, *, timeout: float = 180, python: Path = MLFLOW_PYTHON, **env: str
) -> dict:
    if not python.exists():
        pytest.fail(f"the stock MLflow client is not installed at {python}: run `make install`")
    child = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELOG_"))}
    child.update(
        MLFLOW_TRACKING_URI=uri,
        MLFLOW_TRACKING_TOKEN=token,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_ENABLE_ASYNC_LOGGING="false",
        DO_NOT_TRACK="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        **env,
    )
    res = subprocess.run(
        [str(python), "-c", textwrap.dedent(script)],
        env=child,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if res.returncode != 0:
        raise AssertionError(
            f"mlflow script failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
        )
    last = [line for line in res.stdout.splitlines() if line.startswith("{")]
    return json.loads(last[-1]) if last else {}


def start_platform(home: Path, **extra: str) -> tuple[Up, Platform]:
    addr = f"127.0.0.1:{free_port()}"
    http_port = free_port()
    up = Up(env_for(home, addr, MODELOG_HTTP_ADDR=f"127.0.0.1:{http_port}", **extra))
    up.wait_for("modelog ready on", 90)
    token = (home / "admin-token").read_text().strip()
    return up, Platform(addr, f"http://127.0.0.1:{http_port}", home, token)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    up, p = start_platform(tmp_path_factory.mktemp("gateway-home"))
    yield p
    up.stop()
