"""The registry under load, against `modelog up` (embedded PostgreSQL and broker, every service in one
server process), from 20 concurrent gRPC clients in this process, open loop at a fixed offered rate.

Phases (each after a warm-up):
- commands: each client promotes versions of its own model in a cycle (SetAlias, RequestTransition to
  Production, ApproveTransition by another user, which archives the previous Production version,
  RequestTransition back to Staging, SetAlias, and now and then CreateModelVersion, which checks the
  run and artifact through the tracking and artifacts APIs);
- hot model: the 20 clients move two aliases of one model (every command contends on one stream);
- GetByAlias and GetLineage;
- sequential: one client, one call at a time (CreateModelVersion, SetAlias, GetByAlias), and the same
  three calls on MLflow's registry side by side when an MLflow is installed apart from Modelog
  (MLFLOW_PYTHON, default /tmp/mlflow-venv/bin/python; never a Modelog dependency): `mlflow server`
  over REST on a database of the same PostgreSQL server, driven by MlflowClient.

Latency is measured from the moment a call is sent to its reply. `late_starts` counts calls that
went out more than 5 ms after their scheduled time (the client could not keep the pace).

    python -m tests.bench.bench_registry      # writes tests/bench/results/registry.json
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc

import modelog.artifacts as art
from modelog._client import Connection
from modelog._gen.admin.v1 import admin_pb2, admin_pb2_grpc
from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog_platform.embedded import free_port
from tests.bench.common import percentile, write_result
from tests.procs import Up, env_for

CLIENTS = 20
RATE = 500  # requests/s offered, all clients together
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
WARMUP = 3.0
VERSIONS = 3
GOALS = {"command_p99_ms": 5.0, "get_by_alias_p99_ms": 2.0, "get_lineage_p99_ms": 5.0}
MLFLOW_PYTHON = os.environ.get("MLFLOW_PYTHON", "/tmp/mlflow-venv/bin/python")
SEQUENTIAL_CALLS = 300
MLFLOW_3_17_REPORTED_P50_MS = {
    "create_model_version": 6.4,
    "set_registered_model_alias": 16.0,
    "get_model_version_by_alias": 5.7,
}


class _Quiet:
    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


def _summary(values: list[float]) -> dict[str, Any]:
    values = sorted(values)
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.50), 3),
        "p99_ms": round(percentile(values, 0.99), 3),
        "max_ms": round(values[-1], 3) if values else None,
    }


class Load:
    """20 clients, each calling `step(client, i)` at RATE / CLIENTS per second, open loop."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.late = 0
        self.sent = 0

    async def timed(self, kind: str, call: Awaitable[Any]) -> Any:
        t0 = time.perf_counter()
        try:
            result = await call
        except grpc.aio.AioRpcError as exc:
            self.errors[f"{kind}:{exc.code().name}"] += 1
            if sum(self.errors.values()) <= 3:
                print(f"  {kind} failed: {exc.code().name} {exc.details()}")
            return None
        self.latencies[kind].append((time.perf_counter() - t0) * 1000)
        return result

    async def run(self, step: Callable[[int, int], Awaitable[None]], seconds: float) -> float:
        interval = CLIENTS / RATE
        start = time.perf_counter() + 0.05
        stop_at = start + seconds

        async def client(c: int) -> None:
            next_at = start + interval * c / CLIENTS
            i = 0
            while next_at < stop_at:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.005:
                    self.late += 1
                self.sent += 1
                await step(c, i)
                i += 1
                next_at += interval

        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
        return time.perf_counter() - start

    def report(self, elapsed: float) -> dict[str, Any]:
        everything = [v for values in self.latencies.values() for v in values]
        return {
            "offered_per_s": RATE,
            "achieved_per_s": round(self.sent / elapsed),
            "late_starts": self.late,
            "errors": dict(self.errors),
            "all": _summary(everything),
            **{kind: _summary(values) for kind, values in sorted(self.latencies.items())},
        }


class Bench:
    def __init__(self, addr: str, admin: str) -> None:
        self.addr, self.admin = addr, admin
        self.channel = grpc.aio.insecure_channel(addr)
        self.api = registry_pb2_grpc.RegistryStub(self.channel)
        self.tracking = tracking_pb2_grpc.TrackingStub(self.channel)
        self.approver = ""
        self.run_id = ""
        self.artifact = pb.ArtifactRef()

    def md(self, token: str | None = None) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {token or self.admin}")]

    async def setup(self, home: Path) -> None:
        identity = identity_pb2_grpc.IdentityStub(self.channel)
        resp = await identity.CreateToken(
            identity_pb2.CreateTokenRequest(name="approver"), metadata=self.md()
        )
        self.approver = resp.secret
        run = await self.tracking.StartRun(
            tpb.StartRunRequest(
                experiment_name="bench", create_experiment=True, params={f"p{i}": str(i) for i in range(20)}
            ),
            metadata=self.md(),
        )
        self.run_id = run.run.info.run_id
        keys = [f"m{i}" for i in range(10)] * 100
        await self.tracking.LogMetricsBatch(
            tpb.MetricBatch(
                run_id=self.run_id, keys=keys, values=[0.5] * len(keys), steps=list(range(len(keys)))
            ),
            metadata=self.md(),
        )
        package = home / "package"
        package.mkdir()
        (package / "model.bin").write_bytes(os.urandom(1 << 16))

        def log() -> art.ArtifactVersion:
            with Connection(self.addr, self.admin) as conn:
                return art.log_artifacts(
                    package,
                    name="bench-model",
                    kind="model",
                    run_id=self.run_id,
                    conn=conn,
                    progress=_Quiet(),
                )

        version = await asyncio.to_thread(log)
        self.artifact = pb.ArtifactRef(name=version.name, version=version.version)

    async def create_version(self, model: str) -> pb.CreateModelVersionResponse:
        request = pb.CreateModelVersionRequest(
            model=model, run_id=self.run_id, artifact=self.artifact, create_model=True
        )
        return await self.api.CreateModelVersion(request, metadata=self.md())

    async def model(self, name: str) -> None:
        """VERSIONS versions: v1 in Production, the others in Staging; alias champion -> 1."""
        for n in range(1, VERSIONS + 1):
            await self.create_version(name)
            await self.transition(name, n, pb.STAGE_STAGING)
        await self.transition(name, 1, pb.STAGE_PRODUCTION)
        await self.api.ApproveTransition(
            pb.ApproveTransitionRequest(ref=pb.VersionRef(model=name, version=1)),
            metadata=self.md(self.approver),
        )
        await self.api.SetAlias(
            pb.SetAliasRequest(model=name, alias="champion", version=1), metadata=self.md()
        )

    def transition(self, model: str, n: int, stage: int) -> Awaitable[Any]:
        ref = pb.VersionRef(model=model, version=n)
        return self.api.RequestTransition(
            pb.RequestTransitionRequest(ref=ref, stage=stage), metadata=self.md()
        )


CycleState = dict[int, dict[str, int]]


def command_cycle(b: Bench, load: Load, state: CycleState) -> Callable[[int, int], Awaitable[None]]:
    """Each client walks its own model through promotions; every step is one registry command.
    `state` (which version is in Production, which is next) carries over from the warm-up."""

    async def step(c: int, i: int) -> None:
        s, model = state.setdefault(c, {"prod": 1, "next": 2, "step": 0}), f"model-{c}"
        i = s["step"]
        s["step"] += 1
        phase = i % 6
        if phase == 0:
            await load.timed(
                "SetAlias",
                b.api.SetAlias(
                    pb.SetAliasRequest(model=model, alias="challenger", version=s["next"]), metadata=b.md()
                ),
            )
        elif phase == 1:
            await load.timed("RequestTransition", b.transition(model, s["next"], pb.STAGE_PRODUCTION))
        elif phase == 2:
            ref = pb.VersionRef(model=model, version=s["next"])
            done = await load.timed(
                "ApproveTransition",
                b.api.ApproveTransition(pb.ApproveTransitionRequest(ref=ref), metadata=b.md(b.approver)),
            )
            if done is not None:  # the previous Production version is archived by this approval
                s["prod"], s["next"] = s["next"], s["prod"]
        elif phase == 3:
            await load.timed("RequestTransition", b.transition(model, s["next"], pb.STAGE_STAGING))
        elif phase == 4:
            await load.timed(
                "SetAlias",
                b.api.SetAlias(
                    pb.SetAliasRequest(model=model, alias="champion", version=s["prod"]), metadata=b.md()
                ),
            )
        elif (i + 6 * c) % 24 == 5:  # clients create versions at different moments, not in a burst
            await load.timed("CreateModelVersion", b.create_version(model))
        else:
            ref = pb.VersionRef(model=model, version=s["prod"])
            request = pb.CommentOnVersionRequest(ref=ref, comment=f"check {i}")
            await load.timed("CommentOnVersion", b.api.CommentOnVersion(request, metadata=b.md()))

    return step


def hot_model(b: Bench, load: Load) -> Callable[[int, int], Awaitable[None]]:
    rnd = random.Random(7)

    async def step(c: int, i: int) -> None:
        request = pb.SetAliasRequest(
            model="hot", alias=rnd.choice(["blue", "green"]), version=rnd.randint(1, VERSIONS)
        )
        await load.timed("SetAlias", b.api.SetAlias(request, metadata=b.md()))

    return step


def reads(b: Bench, load: Load, kind: str) -> Callable[[int, int], Awaitable[None]]:
    rnd = random.Random(11)

    async def step(c: int, i: int) -> None:
        model = f"model-{rnd.randrange(CLIENTS)}"
        if kind == "GetByAlias":
            call = b.api.GetByAlias(pb.GetByAliasRequest(model=model, alias="champion"), metadata=b.md())
        else:
            ref = pb.VersionRef(model=model, alias="champion")
            call = b.api.GetLineage(pb.GetLineageRequest(ref=ref), metadata=b.md())
        await load.timed(kind, call)

    return step


async def idle(b: Bench) -> None:
    """Waits until the async projections (the audit trail) have caught up with every log, so a phase
    does not pay for the previous phase's events."""
    admin = admin_pb2_grpc.AdminStub(b.channel)
    while True:
        resp = await admin.ListProjections(admin_pb2.ListProjectionsRequest(), metadata=b.md())
        if all(s.lag == 0 for p in resp.projections for s in p.sources):
            return
        await asyncio.sleep(0.2)


async def phase(
    b: Bench, name: str, make: Callable[[Load], Callable[[int, int], Awaitable[None]]]
) -> dict[str, Any]:
    await idle(b)
    warm = Load()
    await warm.run(make(warm), WARMUP)
    load = Load()
    elapsed = await load.run(make(load), SECONDS)
    result = load.report(elapsed)
    print(
        f"{name:<12} {result['achieved_per_s']:>4} req/s  p50 {result['all']['p50_ms']:>6} ms  "
        f"p99 {result['all']['p99_ms']:>6} ms  errors {sum(result['errors'].values())}  late {load.late}"
    )
    for kind, s in result.items():
        if isinstance(s, dict) and "p99_ms" in s and kind != "all":
            print(f"    {kind:<20} n={s['n']:<6} p50 {s['p50_ms']:>6} ms  p99 {s['p99_ms']:>6} ms")
    return result


def _sequential_summary(values: list[float]) -> dict[str, Any]:
    return {k: v for k, v in _summary(values).items() if k != "max_ms"}


async def sequential(b: Bench) -> dict[str, Any]:
    """One client, one call at a time: the latency of a call on an idle server."""
    await idle(b)
    await b.create_version("seq")
    out: dict[str, Any] = {}
    calls: dict[str, Callable[[int], Awaitable[Any]]] = {
        "create_model_version": lambda i: b.create_version("seq"),
        "set_alias": lambda i: b.api.SetAlias(
            pb.SetAliasRequest(model="seq", alias="champion", version=1 + i % 10), metadata=b.md()
        ),
        "get_by_alias": lambda i: b.api.GetByAlias(
            pb.GetByAliasRequest(model="seq", alias="champion"), metadata=b.md()
        ),
    }
    for name, call in calls.items():
        times = []
        for i in range(SEQUENTIAL_CALLS):
            t0 = time.perf_counter()
            await call(i)
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = _sequential_summary(times)
    print("sequential   " + "  ".join(f"{k} p50 {v['p50_ms']} ms" for k, v in out.items()))
    return out


MLFLOW_CLIENT = """
import json, logging, sys, time
logging.disable(logging.WARNING)
import mlflow
from mlflow import MlflowClient
uri, n = sys.argv[1], int(sys.argv[2])
c = MlflowClient(tracking_uri=uri, registry_uri=uri)
run_id = c.create_run(c.create_experiment(f"bench-{time.time()}")).info.run_id
c.log_batch(run_id, params=[mlflow.entities.Param(f"p{i}", str(i)) for i in range(20)])
name = f"bench-{int(time.time() * 1000)}"
c.create_registered_model(name)
def timed(fn):
    out = []
    for i in range(n):
        t0 = time.perf_counter(); fn(i); out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    return {"n": n, "p50_ms": round(out[n // 2], 3), "p99_ms": round(out[round(0.99 * (n - 1))], 3)}
source = f"runs:/{run_id}/model"
print(json.dumps({
    "mlflow": mlflow.__version__,
    "create_model_version": timed(lambda i: c.create_model_version(name, source, run_id=run_id)),
    "set_alias": timed(lambda i: c.set_registered_model_alias(name, "champion", str(1 + i % 10))),
    "get_by_alias": timed(lambda i: c.get_model_version_by_alias(name, "champion")),
}))
"""


def mlflow_side_by_side(pg_dsn: str, home: Path) -> dict[str, Any]:
    """MLflow's registry through `mlflow server` (REST), its store in a database of the same PostgreSQL."""
    if not Path(MLFLOW_PYTHON).exists():
        return {
            "skipped": f"no MLflow at {MLFLOW_PYTHON} (set MLFLOW_PYTHON to a python with mlflow installed)"
        }
    import asyncpg

    async def create_db() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute("DROP DATABASE IF EXISTS mlflow_bench WITH (FORCE)")
            await conn.execute("CREATE DATABASE mlflow_bench")
        finally:
            await conn.close()

    asyncio.run(create_db())
    parts = urlsplit(pg_dsn)
    store = urlunsplit(parts._replace(scheme="postgresql+psycopg2", path="/mlflow_bench"))
    port = free_port()
    server = subprocess.Popen(
        [MLFLOW_PYTHON, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--default-artifact-root", str(home / "mlflow-artifacts")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            return {"skipped": "mlflow server did not become healthy within 120 s"}
        done = subprocess.run(
            [MLFLOW_PYTHON, "-c", MLFLOW_CLIENT, f"http://127.0.0.1:{port}", str(SEQUENTIAL_CALLS)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            return {"skipped": f"the MLflow client failed: {done.stderr[-500:]}"}
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        result["setup"] = "mlflow server (1 worker) over REST, MlflowClient, PostgreSQL backend store"
        print(
            "mlflow       "
            + "  ".join(f"{k} p50 {v['p50_ms']} ms" for k, v in result.items() if isinstance(v, dict))
        )
        return result
    finally:
        server.terminate()
        server.wait(30)


async def measure(addr: str, admin: str, home: Path) -> dict[str, Any]:
    b = Bench(addr, admin)
    await b.setup(home)
    t0 = time.perf_counter()
    await asyncio.gather(*(b.model(f"model-{c}") for c in range(CLIENTS)))
    await b.model("hot")
    print(f"set-up: {CLIENTS + 1} models x {VERSIONS} versions in {time.perf_counter() - t0:.1f} s")
    cycle: CycleState = {}
    result = {
        "commands": await phase(b, "commands", lambda load: command_cycle(b, load, cycle)),
        "hot_model_set_alias": await phase(b, "hot model", lambda load: hot_model(b, load)),
        "get_by_alias": await phase(b, "GetByAlias", lambda load: reads(b, load, "GetByAlias")),
        "get_lineage": await phase(b, "GetLineage", lambda load: reads(b, load, "GetLineage")),
        "sequential": await sequential(b),
    }
    await b.channel.close()
    return result


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="modelog-bench-registry-") as tmp:
        home = Path(tmp)
        addr = f"127.0.0.1:{free_port()}"
        # To compare: the GC freeze off, or `--workers N` (one client channel: one serving worker
        # takes the load, while the bus worker runs the relays and projections beside it).
        passed = ("MODELOG_GC_FREEZE", "MODELOG_WORKERS")
        gc_env = {k: v for k, v in os.environ.items() if k in passed}
        up = Up(env_for(home / "server", addr, **gc_env))
        load_before = os.getloadavg()
        try:
            ready = up.wait_for("modelog ready on", 90)
            admin = (home / "server" / "admin-token").read_text().strip()
            result = asyncio.run(measure(addr, admin, home))
            pg_dsn = ready.split("postgres: ", 1)[1].split(" |", 1)[0]
            result["mlflow_sequential"] = mlflow_side_by_side(pg_dsn, home)
        finally:
            up.stop()
    load_after = os.getloadavg()
    # One server process says "modelog stopping | gc ..."; with workers, each says it ("[worker 1] ...").
    stopping = [line for line in up.output if "modelog stopping |" in line]
    result["server_gc"] = stopping[-1].split("| ", 1)[-1].strip() if stopping else "not reported"
    result["server_gc_freeze"] = os.environ.get("MODELOG_GC_FREEZE", "1") != "0"
    commands = result["commands"]
    verdict = {
        "command_p99_ms": commands["all"]["p99_ms"],
        "hot_model_command_p99_ms": result["hot_model_set_alias"]["all"]["p99_ms"],
        "get_by_alias_p99_ms": result["get_by_alias"]["all"]["p99_ms"],
        "get_lineage_p99_ms": result["get_lineage"]["all"]["p99_ms"],
    }
    out = {
        "setup": {
            "server": "modelog up (embedded PostgreSQL + tansu broker, all services in one process)"
            if os.environ.get("MODELOG_WORKERS", "1") == "1"
            else f"modelog up --workers {os.environ['MODELOG_WORKERS']} (serving workers + a bus worker)",
            "clients": CLIENTS,
            "offered_per_s": RATE,
            "seconds_per_phase": SECONDS,
            "latency": "from send to reply, client in a separate process (grpc.aio)",
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "note": "a shared 2-vCPU machine: other sessions' processes may run during a bench",
        },
        **result,
        "summary": verdict,
        "goals": GOALS,
        "mlflow_3_17_reported_p50_ms": MLFLOW_3_17_REPORTED_P50_MS,
    }
    path = write_result("registry", out)
    print(f"results written to {path}")
    return out


if __name__ == "__main__":
    main()
