"""The same stock-client workload against any MLflow-compatible server (MLflow's own or Modelog's HTTP
surface). Runs inside the MLflow venv and prints one JSON object of results on stdout.

usage: python http_workload.py TRACKING_URI api SEARCH_RUNS
       python http_workload.py TRACKING_URI artifacts MIB
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

SEED_THREADS = 8


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1)))]


def timed(fn, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    lat = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        lat.append((time.perf_counter() - s) * 1000)
    return {"p50_ms": round(pct(lat, 0.5), 2), "p99_ms": round(pct(lat, 0.99), 2)}


def api(client: MlflowClient, n_runs: int) -> dict[str, object]:
    out: dict[str, object] = {}
    exp = client.create_experiment(f"http-bench-{time.time_ns()}")
    run = client.create_run(exp).info.run_id
    ts = int(time.time() * 1000)
    t0 = time.perf_counter()
    for b in range(20):
        client.log_batch(run, metrics=[Metric("m", float(i), ts, b * 1000 + i) for i in range(1000)])
    out["log_batch_1000"] = {"points_per_s": round(20_000 / (time.perf_counter() - t0))}
    out["runs_get"] = timed(lambda: client.get_run(run), 300)

    name = f"http-bench-model-{time.time_ns()}"
    try:
        client.create_registered_model(name)
        v = client.create_model_version(name, f"runs:/{run}/model", run_id=run)
        client.set_registered_model_alias(name, "champion", v.version)
        out["get_by_alias"] = timed(lambda: client.get_model_version_by_alias(name, "champion"), 300)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal for the other figures
        out["get_by_alias"] = {"error": str(exc)[:300]}

    search_exp = client.create_experiment(f"http-search-{time.time_ns()}")

    def seed(i: int) -> None:
        # Named: two unnamed creates from two threads in the same millisecond are the same request
        # body, which Modelog takes for a retry of one (its idempotency key is the body's digest).
        r = client.create_run(search_exp, run_name=f"seed-{i}")
        client.log_batch(
            r.info.run_id,
            metrics=[Metric("acc", (i % 100) / 100, 0, 0)],
            params=[Param("lr", str([0.1, 0.01, 0.001][i % 3]))],
        )

    # Seeded by a few client threads, so 10,000 runs fit in minutes against either server (MLflow's
    # gunicorn workers and our one process both take concurrent requests); search is timed alone.
    t0 = time.perf_counter()
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(seed, range(n_runs)))
    seeded_s = time.perf_counter() - t0
    search = timed(
        lambda: client.search_runs(
            [search_exp],
            filter_string="metrics.acc > 0.5 and params.lr = '0.01'",
            order_by=["metrics.acc DESC"],
            max_results=100,
        ),
        20,
    )
    out["search_runs"] = {"runs": n_runs, **search, "seed_runs_per_s": round(n_runs / seeded_s)}
    return out


def artifacts(client: MlflowClient, mib: int) -> dict[str, object]:
    exp = client.create_experiment(f"http-art-{time.time_ns()}")
    run = client.create_run(exp).info.run_id
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = os.path.join(tmp, "blob.bin")
        chunk = os.urandom(1 << 20)
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for i in range(mib):
                block = chunk[:-8] + i.to_bytes(8, "big")
                digest.update(block)
                f.write(block)
        s = time.perf_counter()
        client.log_artifact(run, path)
        up = time.perf_counter() - s
        os.remove(path)
        s = time.perf_counter()
        got = client.download_artifacts(run, "blob.bin", tmp)
        down = time.perf_counter() - s
        check = hashlib.sha256()
        with open(got, "rb") as f:
            while block := f.read(1 << 22):
                check.update(block)
        assert check.digest() == digest.digest(), "downloaded bytes differ"
    return {"mib": mib, "upload_mib_per_s": round(mib / up, 1), "download_mib_per_s": round(mib / down, 1)}


def main() -> None:
    uri, what, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    print(json.dumps(api(client, n) if what == "api" else artifacts(client, n)))


if __name__ == "__main__":
    main()
