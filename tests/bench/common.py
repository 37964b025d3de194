"""Shared bench plumbing: a PostgreSQL to measure against and a place for results."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from modelog_platform.embedded import EmbeddedPostgres

RESULTS = Path(__file__).parent / "results"


@contextmanager
def postgres() -> Iterator[str]:
    """MODELOG_PG_DSN if set, else a throwaway embedded server (durable settings, same box)."""
    external = os.environ.get("MODELOG_PG_DSN")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="modelog-bench-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg")
        try:
            yield pg.start()
        finally:
            pg.stop()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


class Rss:
    """Peak resident memory of a process (and of its tree) while the block runs, above the start."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.base = self.peak = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _now(self) -> tuple[int, int]:
        own = self.proc.memory_info().rss
        tree = own
        for child in self.proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                tree += child.memory_info().rss
        return own, tree

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            now = self._now()
            self.peak = (max(self.peak[0], now[0]), max(self.peak[1], now[1]))

    def __enter__(self) -> Rss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth(self) -> dict[str, float]:
        return {
            "server_rss_growth_mib": round((self.peak[0] - self.base[0]) / 2**20, 1),
            "tree_rss_growth_mib": round((self.peak[1] - self.base[1]) / 2**20, 1),
        }
