"""`modelog import mlflow` from a real `mlflow server` (PostgreSQL store) on this machine.

The source holds BENCH_IMPORT_RUNS runs with BENCH_IMPORT_POINTS points each (runs made by the stock
client, metric rows bulk-loaded into MLflow's own tables: logging 10M points through MLflow's REST API
would take most of an hour). Three rates, in one run: reading every history from the source alone (what
bounds any importer), the whole import end to end, and Modelog's side alone (the same history made in
memory, so the source costs nothing).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg

from modelog._client import Connection
from modelog.importers.mlflow import MlflowSource
from modelog.importers.source import Experiment, File, Model, Run, Series, Version
from modelog.importers.state import State
from modelog.importers.writer import Importer
from modelog_platform.embedded import free_port
from tests.bench.bench_tracking import mlflow_server
from tests.bench.common import postgres, write_result
from tests.integration.gatewayfix import run_mlflow
from tests.procs import MODELOG, Up, env_for

RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "1000"))
POINTS = int(os.environ.get("BENCH_IMPORT_POINTS", "10000"))
WORKERS = int(os.environ.get("BENCH_IMPORT_WORKERS", "4"))

_MAKE_RUNS = """
import json
from mlflow import MlflowClient
c = MlflowClient()
eid = c.create_experiment("bench-import")
ids = []
for i in range({runs}):
    r = c.create_run(eid, start_time=1_700_000_000_000 + i, run_name=f"run-{{i}}", tags={{"i": str(i)}})
    c.log_param(r.info.run_id, "lr", "0.01")
    c.set_terminated(r.info.run_id, "FINISHED", end_time=1_700_000_100_000 + i)
    ids.append(r.info.run_id)
print(json.dumps({{"ids": ids}}))
"""


async def _load_points(dsn: str, database: str, ids: list[str]) -> None:
    conn = await asyncpg.connect(dsn, database=database)
    try:
        for rid in ids:
            rows = [("loss", 1.0 / (s + 1), 1_700_000_000_000 + s, rid, s, False) for s in range(POINTS)]
            await conn.copy_records_to_table(
                "metrics", records=rows, columns=["key", "value", "timestamp", "run_uuid", "step", "is_nan"]
            )
            last = rows[-1]
            await conn.execute(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                last[0],
                last[1],
                last[2],
                last[4],
                last[5],
                rid,
            )
    finally:
        await conn.close()


class _InMemory:
    """The same history generated in memory: what Modelog's side of an import sustains when the
    source costs nothing (the sink's rate, beside the source's)."""

    label = "bench:in-memory"

    def experiments(self) -> Iterator[Experiment]:
        yield Experiment("e", "bench-import-sink")

    def runs(self, experiment: Experiment) -> Iterator[Run]:
        for i in range(RUNS):
            yield Run(
                f"r{i}",
                "e",
                f"run-{i}",
                "FINISHED",
                1_700_000_000_000 + i,
                1_700_000_100_000 + i,
                params={"lr": "0.01"},
                metric_keys=("loss",),
            )

    def history(self, run: Run, key: str) -> Series:
        steps = list(range(POINTS))
        return Series(key, [1.0 / (s + 1) for s in steps], steps, [1_700_000_000_000 + s for s in steps])

    def files(self, run: Run) -> Iterator[File]:
        return iter(())

    def open(self, run: Run, path: str) -> BinaryIO:
        raise FileNotFoundError(path)

    def models(self) -> Iterator[Model]:
        return iter(())

    def versions(self, model: Model) -> Iterator[Version]:
        return iter(())

    def version_files(self, version: Version) -> Iterator[File]:
        return iter(())

    def open_version_file(self, version: Version, path: str) -> BinaryIO:
        raise FileNotFoundError(path)


def _sink(addr: str, token: str, home: Path) -> dict[str, Any]:
    with Connection(addr, token) as conn:
        state = State(home / "sink.sqlite")
        try:
            s = Importer(_InMemory(), conn, state, workers=WORKERS).run()
        finally:
            state.close()
    return {
        "points": s.written.points,
        "seconds": round(s.seconds, 2),
        "points_per_s": round(s.written.points / s.seconds),
        "verification_ok": s.verification["ok"],
    }


def _read_source(url: str) -> dict[str, Any]:
    src = MlflowSource(url)
    start = time.monotonic()
    runs = [r for e in src.experiments() for r in src.runs(e)]
    with ThreadPoolExecutor(WORKERS) as pool:
        points = sum(pool.map(lambda r: sum(len(src.history(r, k).values) for k in r.metric_keys), runs))
    took = time.monotonic() - start
    return {
        "runs": len(runs),
        "points": points,
        "seconds": round(took, 2),
        "points_per_s": round(points / took),
    }


def main() -> dict[str, Any]:
    with postgres() as dsn, tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:

        async def create_db() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("DROP DATABASE IF EXISTS mlflow_import WITH (FORCE)")
                await conn.execute("CREATE DATABASE mlflow_import")
            finally:
                await conn.close()

        asyncio.run(create_db())
        with mlflow_server(dsn, "mlflow_import") as served:
            if served is None:
                return {"error": "mlflow is not installed"}
            url = served[0]
            t = time.monotonic()
            ids = run_mlflow(_MAKE_RUNS.format(runs=RUNS), url, "", timeout=3600)["ids"]
            asyncio.run(_load_points(dsn, "mlflow_import", ids))
            fill_s = time.monotonic() - t
            print(f"source filled: {RUNS} runs x {POINTS} points in {fill_s:.0f} s")
            source = _read_source(url)
            print(f"source alone: {source['points_per_s']:,} points/s")
            home = Path(tmp) / "modelog"
            addr = f"127.0.0.1:{free_port()}"
            up = Up(env_for(home, addr, MODELOG_HTTP_ADDR="off"))
            try:
                up.wait_for("modelog ready on", 90)
                token = (home / "admin-token").read_text().strip()
                env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELOG_", "MLFLOW_"))}
                env.update(MODELOG_URL=addr, MODELOG_TOKEN=token, MODELOG_HOME=str(Path(tmp) / "cli"))
                t = time.monotonic()
                res = subprocess.run(
                    [*MODELOG, "import", "mlflow", "--from", url, "--json", "--workers", str(WORKERS)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=3600,
                )
                took = time.monotonic() - t
                if res.returncode != 0:
                    return {"error": res.stdout[-2000:] + res.stderr[-2000:]}
                summary = json.loads(res.stdout)
                t = time.monotonic()
                again = subprocess.run(
                    [*MODELOG, "import", "mlflow", "--from", url, "--json"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=3600,
                )
                again_s = time.monotonic() - t
                sink = _sink(addr, token, Path(tmp))
                print(f"modelog side alone: {sink['points_per_s']:,} points/s")
            finally:
                up.stop()
    points = summary["written"]["points"]
    result = {
        "source": {"runs": RUNS, "points_per_run": POINTS, "filled_in_s": round(fill_s)},
        "source_alone": source,
        "import": {
            "runs": summary["written"]["runs"],
            "points": points,
            "seconds": round(took, 1),
            "points_per_s": round(points / took),
            "verification_ok": summary["verification"]["ok"],
            "waiting_on_source_s_summed_over_workers": round(summary.get("source_seconds", 0), 1),
        },
        "modelog_side_alone": sink,
        "second_import": {"seconds": round(again_s, 1), "written": json.loads(again.stdout)["written"]},
        "goals": {"points_per_s": 100_000, "end_to_end_s_for_1000_runs_x_10k": 180},
    }
    write_result("import", result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
