"""One 1 GiB file through the MLflow artifact endpoints of `modelog up`: PUT and GET throughput, and how
much the server's resident memory grows meanwhile (it must stay flat: bodies stream both ways).

Three clients: a raw PUT/GET (http.client, the bytes as they are), the stock MLflow client's
log_artifact/download_artifacts (tests/bench/http_workload.py), and a chunked PUT (no Content-Length:
the body is spooled to a temporary file before it streams on). RSS is sampled every 50 ms for the
server process alone (the gateway and every service run in it) and for its whole tree (with the
embedded PostgreSQL and broker).

    python -m tests.bench.bench_http_artifacts        # MIB=256 for a quicker run
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.bench.common import Rss, write_result
from tests.integration.gatewayfix import Platform, start_platform
from tests.procs import MLFLOW_PYTHON

HERE = Path(__file__).parent
MIB = int(os.environ.get("MIB", "1024"))
ROOT = "/api/2.0/mlflow-artifacts/artifacts"


def _conn(p: Platform) -> http.client.HTTPConnection:
    url = urlsplit(p.http)
    return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=600)


def _request(p: Platform, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, bytes]:
    conn = _conn(p)
    try:
        conn.request(method, path, body=body, headers={"Authorization": f"Bearer {p.token}", **headers})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _file(path: Path, mib: int) -> str:
    """`mib` MiB that do not repeat (no block deduplicates), and their SHA-256."""
    digest = hashlib.sha256()
    chunk = os.urandom(1 << 20)
    with path.open("wb") as f:
        for i in range(mib):
            block = chunk[:-8] + i.to_bytes(8, "big")
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def _run(p: Platform) -> str:
    status, body = _request(
        p, "POST", "/api/2.0/mlflow/runs/create", json.dumps({"experiment_id": "0"}).encode()
    )
    assert status == 200, body
    return str(json.loads(body)["run"]["info"]["run_id"])


def _raw(p: Platform, pid: int, path: Path, digest: str, mib: int) -> dict[str, Any]:
    url = f"{ROOT}/0/{_run(p)}/artifacts/blob.bin"
    out: dict[str, Any] = {}
    with Rss(pid) as rss, path.open("rb") as f:
        s = time.perf_counter()
        status, body = _request(p, "PUT", url, f, **{"Content-Length": str(mib << 20)})
        up = time.perf_counter() - s
    assert status == 200, body
    out["put"] = {"mib_per_s": round(mib / up, 1), **rss.growth()}
    with Rss(pid) as rss:
        conn = _conn(p)
        s = time.perf_counter()
        conn.request("GET", url, headers={"Authorization": f"Bearer {p.token}"})
        resp = conn.getresponse()
        check = hashlib.sha256()
        while block := resp.read(1 << 20):
            check.update(block)
        down = time.perf_counter() - s
        conn.close()
    assert check.hexdigest() == digest, "downloaded bytes differ"
    out["get"] = {"mib_per_s": round(mib / down, 1), **rss.growth()}
    return out


def _chunked(p: Platform, pid: int, path: Path, mib: int) -> dict[str, Any]:
    def pieces() -> Iterator[bytes]:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                yield block

    url = f"{ROOT}/0/{_run(p)}/artifacts/chunked.bin"
    with Rss(pid) as rss:
        s = time.perf_counter()
        status, body = _request(p, "PUT", url, pieces())
        up = time.perf_counter() - s
    assert status == 200, body
    return {"put": {"mib_per_s": round(mib / up, 1), **rss.growth()}}


def _stock(p: Platform, pid: int, mib: int, tmp: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELOG_"))}
    env.update(BENCH_TMP=tmp, MLFLOW_HTTP_REQUEST_TIMEOUT="600", MLFLOW_TRACKING_TOKEN=p.token)
    with Rss(pid) as rss:
        res = subprocess.run(
            [str(MLFLOW_PYTHON), str(HERE / "http_workload.py"), p.http, "artifacts", str(mib)],
            capture_output=True,
            text=True,
            timeout=3600,
            env=env,
        )
    if res.returncode != 0:
        return {"error": res.stderr[-1500:]}
    return {**json.loads(res.stdout.strip().splitlines()[-1]), **rss.growth()}


def main() -> dict[str, Any]:
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        up, p = start_platform(Path(tmp) / "server")
        try:
            path = Path(tmp) / "blob.bin"
            digest = _file(path, MIB)
            result: dict[str, Any] = {
                "mib": MIB,
                "raw": _raw(p, up.proc.pid, path, digest, MIB),
                "chunked": _chunked(p, up.proc.pid, path, MIB),
            }
            path.unlink()
            result["stock_client"] = _stock(p, up.proc.pid, MIB, tmp)
        finally:
            up.stop()
    result["load_average_1m"] = {"start": load_start, "end": os.getloadavg()[0]}
    result["measured_at"] = time.strftime("%Y-%m-%d")
    print(json.dumps(result, indent=2))
    print(f"results written to {write_result('http_artifacts', result)}")
    return result


if __name__ == "__main__":
    main()
