"""Tracking through the SDK, side by side with MLflow's tracking server on the same PostgreSQL.

MLflow lives in its own venv (.venv-mlflow, built by `make install` from requirements-mlflow.lock), never in
Modelog's dependencies. Both servers run as separate processes on this 2-core box.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

import modelog
from modelog._gen.tracking.v1 import tracking_pb2
from modelog_platform.embedded import free_port
from tests.bench.common import percentile, postgres, write_result
from tests.procs import MLFLOW_PYTHON, Up, env_for

HERE = Path(__file__).parent
MLFLOW_VERSION = "3.17.2"
SEARCH_RUNS = 10_000
MLFLOW_SEARCH_RUNS = 1_000  # MLflow creates runs at ~7 ms each; 10,000 would take minutes
HISTORY_POINTS = 100_000


def _ensure_mlflow() -> Path | None:
    if not MLFLOW_PYTHON.exists():
        print(f"MLflow is not installed ({MLFLOW_PYTHON}); `make install` creates its venv")
        return None
    return MLFLOW_PYTHON


@contextlib.contextmanager
def mlflow_server(dsn: str, database: str = "mlflow") -> Iterator[tuple[str, int] | None]:
    """`mlflow server` on the same PostgreSQL (database `database`, created empty by the caller), with
    proxied artifacts in a temporary directory; yields (url, pid), or None when MLflow is missing."""
    python = _ensure_mlflow()
    if python is None:
        yield None
        return
    host = dsn.split("host=")[1].split("&")[0]
    store = f"postgresql+psycopg2://postgres@/{database}?host={host}"
    port = free_port()
    with tempfile.TemporaryDirectory() as artifacts:
        server = subprocess.Popen(
            [
                str(python),
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                store,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--artifacts-destination",
                artifacts,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        print("MLflow server did not start")
                        yield None
                        return
                    time.sleep(0.5)
            yield f"http://127.0.0.1:{port}", server.pid
        finally:
            server.terminate()
            server.wait(30)


def _mlflow(dsn: str) -> dict[str, Any] | None:
    with mlflow_server(dsn) as served:
        if served is None:
            return None
        res = subprocess.run(
            [
                str(MLFLOW_PYTHON),
                str(HERE / "mlflow_workload.py"),
                served[0],
                str(MLFLOW_SEARCH_RUNS),
                str(HISTORY_POINTS),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if res.returncode != 0:
            print(f"MLflow workload failed: {res.stderr[-1000:]}")
            return None
        data: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
        data["version"] = MLFLOW_VERSION
        return data


def _modelog(addr: str, token: str, home: Path) -> dict[str, Any]:
    os.environ.update(MODELOG_URL=addr, MODELOG_TOKEN=token, MODELOG_HOME=str(home))
    client = modelog.connect()
    out: dict[str, Any] = {}

    run = client.start_run("bench")
    lat = []
    began = time.perf_counter()
    for i in range(100_000):
        s = time.perf_counter_ns()
        run.log_metric("loss", 1.0 / (i + 1), step=i)
        lat.append(time.perf_counter_ns() - s)
    run.flush()
    lat.sort()
    out["log_metric_call"] = {
        "calls": len(lat),
        "p50_us": round(lat[len(lat) // 2] / 1000, 3),
        "p99_us": round(lat[int(len(lat) * 0.99)] / 1000, 3),
        "points_per_s_until_acknowledged": round(len(lat) / (time.perf_counter() - began)),
    }
    run.finish()

    def ingest(points_per_client: int, clients: int) -> float:
        runs = [client.start_run("bench-ingest") for _ in range(clients)]
        start = threading.Barrier(clients + 1)

        def work(r: modelog.ActiveRun) -> None:
            start.wait()
            for step in range(points_per_client // 10):
                r.log_metrics({f"m{k}": float(step) for k in range(10)}, step=step)
            r.flush()

        threads = [threading.Thread(target=work, args=(r,)) for r in runs]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        for r in runs:  # queryable: the summary counts every point
            assert client.get_run(r.id).metric_summaries["m0"]["count"] == points_per_client // 10
            r.finish()
        return points_per_client * clients / seconds

    out["ingest_one_client"] = {"points": 1_000_000, "points_per_s": round(ingest(1_000_000, 1))}
    out["ingest_eight_clients"] = {"points": 2_000_000, "points_per_s": round(ingest(250_000, 8))}

    t = client._online()
    exp = t.call("CreateExperiment", tracking_pb2.CreateExperimentRequest(name=f"search-{time.time_ns()}"))
    exp_id = exp.experiment.experiment_id
    lat_ms = []
    for i in range(SEARCH_RUNS):
        s = time.perf_counter()
        r = t.call(
            "StartRun",
            tracking_pb2.StartRunRequest(experiment_id=exp_id, params={"lr": str([0.1, 0.01, 0.001][i % 3])}),
        )
        lat_ms.append((time.perf_counter() - s) * 1000)
        t.call(
            "LogMetricsBatch",
            tracking_pb2.MetricBatch(
                run_id=r.run.info.run_id, keys=["acc"], values=[(i % 100) / 100], steps=[0]
            ),
        )
    lat_ms.sort()
    out["start_run"] = {
        "runs": SEARCH_RUNS,
        "p50_ms": round(percentile(lat_ms, 0.5), 2),
        "p99_ms": round(percentile(lat_ms, 0.99), 2),
    }
    lat_ms = []
    for _ in range(50):
        s = time.perf_counter()
        t.call(
            "SearchRuns",
            tracking_pb2.SearchRunsRequest(
                experiment_ids=[exp_id],
                filter="metrics.acc > 0.5 and params.lr = '0.01'",
                order_by=["metrics.acc DESC"],
                page_size=100,
            ),
        )
        lat_ms.append((time.perf_counter() - s) * 1000)
    lat_ms.sort()
    out["search_runs"] = {
        "runs": SEARCH_RUNS,
        "p50_ms": round(percentile(lat_ms, 0.5), 2),
        "p99_ms": round(percentile(lat_ms, 0.99), 2),
    }

    with client.start_run("bench-history") as hist:
        for step in range(HISTORY_POINTS):
            hist.log_metric("m", float(step), step=step)
        hist.flush()
    lat_ms = []
    for _ in range(10):
        s = time.perf_counter()
        points = client.metric_history(hist.id, "m")
        lat_ms.append((time.perf_counter() - s) * 1000)
    assert len(points) == HISTORY_POINTS
    lat_ms.sort()
    out["get_metric_history"] = {"points": HISTORY_POINTS, "p50_ms": round(percentile(lat_ms, 0.5), 1)}
    client.close()
    return out


def main() -> dict[str, Any]:
    with postgres() as dsn, tempfile.TemporaryDirectory() as tmp:
        import asyncio

        async def create_db() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("DROP DATABASE IF EXISTS mlflow WITH (FORCE)")
                await conn.execute("CREATE DATABASE mlflow")
            finally:
                await conn.close()

        asyncio.run(create_db())
        home = Path(tmp)
        addr = f"127.0.0.1:{free_port()}"
        up = Up(env_for(home / "server", addr, MODELOG_PG_DSN=dsn))
        try:
            up.wait_for("modelog ready on", 60)
            ours = _modelog(addr, (home / "server" / "admin-token").read_text().strip(), home / "client")
        finally:
            up.stop()
        theirs = _mlflow(dsn)
    result: dict[str, Any] = {"modelog": ours, "mlflow": theirs}
    if theirs:
        result["ratios"] = {
            "ingest_one_client_vs_log_batch": round(
                ours["ingest_one_client"]["points_per_s"]
                / theirs["log_batch_1000_one_client"]["points_per_s"],
                1,
            ),
            "ingest_eight_clients_vs_log_batch": round(
                ours["ingest_eight_clients"]["points_per_s"]
                / theirs["log_batch_1000_eight_clients"]["points_per_s"],
                1,
            ),
            "search_runs_p50_speedup": round(
                theirs["search_runs"]["p50_ms"] / ours["search_runs"]["p50_ms"], 1
            ),
            "metric_history_speedup": round(
                theirs["get_metric_history"]["seconds"] * 1000 / ours["get_metric_history"]["p50_ms"], 1
            ),
        }
    print(json.dumps(result, indent=2))
    path = write_result("tracking", result)
    print(f"results written to {path}")
    return result


if __name__ == "__main__":
    main()
