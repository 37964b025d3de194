"""The HTTP surface side by side with `mlflow server` on the same PostgreSQL: the identical stock-client
workload (tests/bench/http_workload.py) against both, in one run. Ratios are MLflow's time over ours.

Both servers run as separate processes on this 2-core box; the client is a third process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from modelog_platform.embedded import free_port
from tests.bench.bench_tracking import mlflow_server
from tests.bench.common import Rss, postgres, write_result
from tests.procs import MLFLOW_PYTHON, Up, env_for

HERE = Path(__file__).parent
SEARCH_RUNS = int(os.environ.get("BENCH_HTTP_RUNS", "10000"))
"""The issue's size. The workload seeds them from 8 client threads, so MLflow's ~50 ms per run (one
client) becomes minutes, not the ten they took one at a time."""
ARTIFACT_MIB = int(os.environ.get("BENCH_HTTP_MIB", "1024"))


def _workload(uri: str, what: str, n: int, token: str | None, tmp: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELOG_"))}
    env.update(BENCH_TMP=tmp, MLFLOW_HTTP_REQUEST_TIMEOUT="600")
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    res = subprocess.run(
        [str(MLFLOW_PYTHON), str(HERE / "http_workload.py"), uri, what, str(n)],
        capture_output=True,
        text=True,
        timeout=3600,
        env=env,
    )
    if res.returncode != 0:
        return {"error": res.stderr[-1500:]}
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _side(uri: str, pid: int, token: str | None, n_runs: int, tmp: str) -> dict[str, Any]:
    """Both workloads, with the 1-minute load average around each: this 2-core box is shared, and
    the figures move with it."""
    start = _load()
    out = _workload(uri, "api", n_runs, token, tmp)
    out["api_load_average_1m"] = {"start": start, "end": _load()}
    start = _load()
    with Rss(pid) as rss:
        out["artifacts"] = _workload(uri, "artifacts", ARTIFACT_MIB, token, tmp)
    # The server's whole process tree (MLflow's gunicorn workers, our ingest workers).
    out["artifacts"]["server_rss_growth_mib"] = rss.growth()["tree_rss_growth_mib"]
    out["artifacts"]["load_average_1m"] = {"start": start, "end": _load()}
    return out


def _ratio(theirs: float, ours: float) -> float | None:
    return round(theirs / ours, 1) if ours and theirs else None


def main() -> dict[str, Any]:
    with postgres() as dsn, tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:

        async def create_db() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("DROP DATABASE IF EXISTS mlflow_http WITH (FORCE)")
                await conn.execute("CREATE DATABASE mlflow_http")
            finally:
                await conn.close()

        asyncio.run(create_db())
        home = Path(tmp) / "server"
        http_port = free_port()
        up = Up(
            env_for(
                home,
                f"127.0.0.1:{free_port()}",
                MODELOG_PG_DSN=dsn,
                MODELOG_HTTP_ADDR=f"127.0.0.1:{http_port}",
            )
        )
        try:
            up.wait_for("modelog ready on", 60)
            token = (home / "admin-token").read_text().strip()
            ours = _side(f"http://127.0.0.1:{http_port}", up.proc.pid, token, SEARCH_RUNS, tmp)
        finally:
            up.stop()
        theirs: dict[str, Any] | None = None
        with mlflow_server(dsn, "mlflow_http") as served:
            if served is not None:
                theirs = _side(served[0], served[1], None, SEARCH_RUNS, tmp)
    result: dict[str, Any] = {"modelog": ours, "mlflow": theirs, "measured_at": time.strftime("%Y-%m-%d")}
    if theirs and "error" not in theirs and "error" not in ours:
        result["ratios"] = {
            "log_batch_points_per_s": _ratio(
                ours["log_batch_1000"]["points_per_s"], theirs["log_batch_1000"]["points_per_s"]
            ),
            "runs_get_p99_speedup": _ratio(theirs["runs_get"]["p99_ms"], ours["runs_get"]["p99_ms"]),
            "get_by_alias_p99_speedup": _ratio(
                theirs["get_by_alias"].get("p99_ms", 0), ours["get_by_alias"].get("p99_ms", 0)
            ),
            "search_runs_p50_speedup": _ratio(theirs["search_runs"]["p50_ms"], ours["search_runs"]["p50_ms"]),
            "artifact_upload": _ratio(
                ours["artifacts"].get("upload_mib_per_s", 0), theirs["artifacts"].get("upload_mib_per_s", 0)
            ),
            "artifact_download": _ratio(
                ours["artifacts"].get("download_mib_per_s", 0),
                theirs["artifacts"].get("download_mib_per_s", 0),
            ),
        }
    print(json.dumps(result, indent=2))
    path = write_result("http", result)
    print(f"results written to {path}")
    return result


if __name__ == "__main__":
    main()
