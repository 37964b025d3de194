"""Shared bench plumbing: a PostgreSQL to measure against and a place for results."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
