"""Optional system metrics for a run: CPU, memory and (where nvidia-smi exists) GPU, sampled in the
background and logged as `system/...` metrics through the run's non-blocking batcher."""

from __future__ import annotations

import shutil
import subprocess
import threading
from typing import TYPE_CHECKING

import psutil

from modelog.errors import ModelogError

if TYPE_CHECKING:
    from modelog.tracking import ActiveRun


def sample() -> dict[str, float]:
    vm = psutil.virtual_memory()
    out = {
        "system/cpu_percent": psutil.cpu_percent(interval=None),
        "system/memory_percent": vm.percent,
        "system/memory_used_mb": vm.used / 2**20,
    }
    out.update(_gpus())
    return out


def _gpus() -> dict[str, float]:
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        text = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    out: dict[str, float] = {}
    for i, line in enumerate(text.strip().splitlines()):
        util, mem = (float(x) for x in line.split(","))
        out[f"system/gpu{i}_utilization_percent"] = util
        out[f"system/gpu{i}_memory_used_mb"] = mem
    return out


class SystemMetrics:
    """Samples every `interval` seconds until stopped (the run stops it when it finishes)."""

    def __init__(self, run: ActiveRun, interval: float = 10.0) -> None:
        self.run = run
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="modelog-system-metrics", daemon=True)
        psutil.cpu_percent(interval=None)  # primes the CPU counter
        self._thread.start()

    def _loop(self) -> None:
        step = 0
        while not self._stop.wait(self.interval):
            try:
                self.run.log_metrics(sample(), step=step)
            except ModelogError:
                return  # the run takes no more metrics; its owner hears why from the run itself
            step += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 5)
