"""Running `modelog` as real subprocesses in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from queue import Empty, Queue

import psutil

MODELOG = [sys.executable, "-m", "modelog.cli"]
MLFLOW_PYTHON = Path(__file__).resolve().parent.parent / ".venv-mlflow" / "bin" / "python"
MLFLOW2_PYTHON = Path(__file__).resolve().parent.parent / ".venv-mlflow2" / "bin" / "python"
"""MLflow 2.9, the oldest server `modelog import mlflow` reads (make install puts it there)."""
"""The stock MLflow client's interpreter (`make install` builds its venv from requirements-mlflow.lock)."""
CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium, which the browser tests drive (`make test` installs it when it can)."""
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""What works on this kind of machine: no sandbox as root, and no background network (it is closed)."""


class Up:
    """A running `modelog up` whose output lines are collected by a thread."""

    def __init__(self, env: dict[str, str], args: Sequence[str] = ("up",)) -> None:
        self.proc = subprocess.Popen(
            [*MODELOG, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: Queue[str] = Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout}s; output:\n{''.join(self.output)}")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def env_for(home: Path, addr: str, **extra: str) -> dict[str, str]:
    """A clean environment for one `modelog up`: its own home and gRPC address, and its HTTP surface on
    a free port (never MLflow's 5000, which parallel platforms would fight over)."""
    from modelog_platform.embedded import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOG_")}
    env.update(MODELOG_HOME=str(home), MODELOG_ADDR=addr, MODELOG_HTTP_ADDR=f"127.0.0.1:{free_port()}")
    env.update(extra)
    return env
