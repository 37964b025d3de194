"""Scaling curve: `modelog up --workers N` for N = 1, 2, 4, loaded from separate client processes.

Per N: 16 clients starting runs (runs/s, p50/p99 of StartRun), then 8 clients ingesting metric points
(points/s), with the CPU seconds each kind of process spent (workers, PostgreSQL, broker, clients), so
the capacity plan (docs/capacity.md) can say which part runs out first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

from modelog_platform.embedded import free_port
from tests.bench.common import percentile, write_result

MODELOG = [sys.executable, "-m", "modelog.cli"]
CLIENT = [sys.executable, "-m", "tests.bench.scaling_client"]
START_CLIENTS, RUNS_PER_CLIENT = 16, 300
INGEST_CLIENTS, POINTS_PER_CLIENT = 8, 250_000
WORKERS = tuple(int(n) for n in os.environ.get("MODELOG_BENCH_WORKERS", "1,2,4").split(","))


def _kind(p: psutil.Process) -> str:
    cmd = " ".join(p.cmdline())
    if "modelog_platform.workers" in cmd or "modelog.cli up" in cmd:
        return "modelog"
    if "postgres" in p.name():
        return "postgres"
    if "tansu" in cmd:
        return "broker"
    return "other"


def _cpu(root: psutil.Process) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            kind = _kind(p)
        except psutil.Error:
            continue
        out[kind] = out.get(kind, 0.0) + t.user + t.system
    return out


def _phase(up: psutil.Process, env: dict[str, str], kind: str, clients: int, size: int) -> dict[str, Any]:
    procs = [
        subprocess.Popen(
            [*CLIENT, kind, str(size)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(clients)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    before, load0 = _cpu(up), os.getloadavg()[0]
    client_cpu0 = sum(psutil.Process(p.pid).cpu_times().user for p in procs)
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    client_cpu = 0.0
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        ps = psutil.Process(p.pid)
        client_cpu += ps.cpu_times().user + ps.cpu_times().system
        results.append(json.loads(line))
        p.wait(60)
    after = _cpu(up)
    seconds = max(r["ended"] for r in results) - min(r["began"] for r in results)
    cpu = {k: round(after.get(k, 0.0) - before.get(k, 0.0), 2) for k in after}
    cpu["clients"] = round(client_cpu - client_cpu0, 2)
    out: dict[str, Any] = {"clients": clients, "seconds": round(seconds, 2), "cpu_s": cpu}
    out["load_average_1m"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
    if kind == "start_run":
        lat = sorted(x for r in results for x in r["latencies_ms"])
        out.update(
            runs=len(lat),
            runs_per_s=round(len(lat) / seconds),
            p50_ms=round(percentile(lat, 0.5), 2),
            p99_ms=round(percentile(lat, 0.99), 2),
        )
    else:
        points = sum(r["points"] for r in results)
        out.update(points=points, points_per_s=round(points / seconds))
    return out


def _one(workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="modelog-scaling-") as home:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOG_")}
        env.update(
            MODELOG_HOME=home,
            MODELOG_ADDR=f"127.0.0.1:{port}",
            MODELOG_HTTP_ADDR="off",
            MODELOG_WORKERS=str(workers),
        )
        up = subprocess.Popen([*MODELOG, "up"], env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert up.stdout is not None
            for line in up.stdout:
                if line.startswith("modelog ready on"):
                    break
            else:
                raise RuntimeError("modelog up exited before it was ready")
            token = (Path(home) / "admin-token").read_text().strip()
            client_env = {**env, "MODELOG_URL": f"127.0.0.1:{port}", "MODELOG_TOKEN": token}
            client_env["MODELOG_HOME"] = str(Path(home) / "client")
            root = psutil.Process(up.pid)
            return {
                "start_run_16_clients": _phase(root, client_env, "start_run", START_CLIENTS, RUNS_PER_CLIENT),
                "ingest_8_clients": _phase(root, client_env, "ingest", INGEST_CLIENTS, POINTS_PER_CLIENT),
            }
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(60)


def main() -> dict[str, Any]:
    curve = {}
    for n in WORKERS:
        curve[str(n)] = _one(n)
        s, i = curve[str(n)]["start_run_16_clients"], curve[str(n)]["ingest_8_clients"]
        print(
            f"workers={n}: start_run {s['runs_per_s']}/s p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms | "
            f"ingest {i['points_per_s']:,} points/s | cpu {i['cpu_s']}",
            flush=True,
        )
    data = {"cores": os.cpu_count(), "workers": curve}
    path = write_result("scaling", data)
    print(f"wrote {path}")
    return data


if __name__ == "__main__":
    main()
