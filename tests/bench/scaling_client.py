"""One load process of bench_scaling: connects, says `ready`, waits for `go` on stdin, runs one
workload and prints its result as one JSON line. Separate processes, so the clients' own Python is
not the bottleneck, and each has its own connection for the kernel to hand to any worker."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import modelog
from modelog._gen.tracking.v1 import tracking_pb2


def start_runs(client: modelog.Client, experiment_id: str, n: int) -> dict[str, Any]:
    t = client._online()
    lat = []
    for i in range(n):
        s = time.perf_counter()
        t.call(
            "StartRun",
            tracking_pb2.StartRunRequest(
                experiment_id=experiment_id, run_id=uuid.uuid4().hex, params={"i": str(i)}
            ),
        )
        lat.append((time.perf_counter() - s) * 1000)
    return {"latencies_ms": lat}


def ingest(client: modelog.Client, points: int) -> dict[str, Any]:
    run = client.start_run("scaling-ingest")
    for step in range(points // 10):
        run.log_metrics({f"m{k}": float(step) for k in range(10)}, step=step)
    run.flush()
    run.finish()
    return {"points": points}


def main() -> None:
    kind, size = sys.argv[1], int(sys.argv[2])
    client = modelog.connect()
    exp = client._online().call(
        "CreateExperiment", tracking_pb2.CreateExperimentRequest(name=f"scaling-{uuid.uuid4().hex[:8]}")
    )
    print("ready", flush=True)
    sys.stdin.readline()
    began = time.time()
    if kind == "start_run":
        out = start_runs(client, exp.experiment.experiment_id, size)
    else:
        out = ingest(client, size)
    out.update(began=began, ended=time.time())
    print(json.dumps(out), flush=True)
    client.close()


if __name__ == "__main__":
    main()
