"""The tracking workload against an MLflow server. Runs inside the separate MLflow bench venv (MLflow
is never a Modelog dependency) and prints one JSON object of results on stdout.

usage: python mlflow_workload.py TRACKING_URI SEARCH_RUNS HISTORY_POINTS
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


def _nodelay() -> None:
    """Give MLflow's HTTP client TCP_NODELAY so its figures are its best (as in the issue's baseline)."""
    import urllib3.connection

    urllib3.connection.HTTPConnection.default_socket_options = [
        *urllib3.connection.HTTPConnection.default_socket_options,
        (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
    ]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1)))]


def main() -> None:
    uri, n_runs, history_points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    _nodelay()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment(f"bench-{time.time_ns()}")
    out: dict[str, object] = {}

    run = client.create_run(exp)
    lat = []
    t0 = time.perf_counter()
    for i in range(500):
        s = time.perf_counter()
        client.log_metric(run.info.run_id, "loss", 1.0 / (i + 1), step=i)
        lat.append((time.perf_counter() - s) * 1000)
    out["log_metric_one_point"] = {
        "points_per_s": round(500 / (time.perf_counter() - t0)),
        "p50_ms": round(pct(lat, 0.5), 2),
    }

    def batches(run_id: str, n: int, base: int = 0) -> None:
        ts = int(time.time() * 1000)
        for b in range(n):
            client.log_batch(
                run_id, metrics=[Metric("m", float(i), ts, base + b * 1000 + i) for i in range(1000)]
            )

    run1 = client.create_run(exp)
    t0 = time.perf_counter()
    batches(run1.info.run_id, 20)
    out["log_batch_1000_one_client"] = {"points_per_s": round(20_000 / (time.perf_counter() - t0))}

    runs8 = [client.create_run(exp).info.run_id for _ in range(8)]
    threads = [threading.Thread(target=batches, args=(r, 10)) for r in runs8]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["log_batch_1000_eight_clients"] = {"points_per_s": round(80_000 / (time.perf_counter() - t0))}

    lat = []
    search_exp = client.create_experiment(f"search-{time.time_ns()}")
    for i in range(n_runs):
        s = time.perf_counter()
        r = client.create_run(search_exp)
        lat.append((time.perf_counter() - s) * 1000)
        client.log_batch(
            r.info.run_id,
            metrics=[Metric("acc", (i % 100) / 100, 0, 0)],
            params=[mlflow.entities.Param("lr", str([0.1, 0.01, 0.001][i % 3]))],
        )
    out["create_run"] = {"p50_ms": round(pct(lat, 0.5), 2), "p99_ms": round(pct(lat, 0.99), 2)}
    lat = []
    for _ in range(20):
        s = time.perf_counter()
        client.search_runs(
            [search_exp],
            filter_string="metrics.acc > 0.5 and params.lr = '0.01'",
            order_by=["metrics.acc DESC"],
            max_results=100,
        )
        lat.append((time.perf_counter() - s) * 1000)
    out["search_runs"] = {"runs": n_runs, "p50_ms": round(pct(lat, 0.5), 2)}

    hist = client.create_run(exp).info.run_id
    batches(hist, history_points // 1000)
    s = time.perf_counter()
    points = client.get_metric_history(hist, "m")
    out["get_metric_history"] = {"points": len(points), "seconds": round(time.perf_counter() - s, 3)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
