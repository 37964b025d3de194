"""A real `mlflow server` (the stock package, SQLite store, proxied artifacts) for the import tests."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from modelog_platform.embedded import free_port
from tests.integration.gatewayfix import run_mlflow
from tests.procs import MLFLOW_PYTHON, MODELOG

HISTORY = (Path(__file__).parent / "mlflow_history.py").read_text()


@contextmanager
def mlflow_server(root: Path, python: Path = MLFLOW_PYTHON) -> Iterator[str]:
    if not python.exists():
        pytest.fail(f"the stock MLflow package is not installed at {python}: run `make install`")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELOG_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
    log = open(root / "mlflow-server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            str(python),
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    said = (root / "mlflow-server.log").read_text()[-3000:]
                    raise AssertionError(f"mlflow server did not start: {said}") from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def fill(url: str, python: Path = MLFLOW_PYTHON, **env: str) -> dict:
    """Write the known history into the server at `url` with that MLflow's client; what it wrote."""
    return run_mlflow(HISTORY, url, "", timeout=600, python=python, **env)


def importer(
    addr: str, token: str, home: Path, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELOG_", "MLFLOW_"))}
    env.update(MODELOG_URL=addr, MODELOG_TOKEN=token, MODELOG_HOME=str(home))
    return subprocess.run(
        [*MODELOG, "import", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def summary(res: subprocess.CompletedProcess[str]) -> dict:
    assert res.stdout.strip(), res.stderr
    return json.loads(res.stdout)
