"""An in-process platform with every service (monitoring reaches the registry and artifacts through their
gRPC APIs on the process's own address, as under `modelog up`), one per test module, plus generated data
with known shifts: a reference dataset artifact and a registered model `churn@champion`."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import modelog.artifacts as art
from eventlog import RecordedEvent
from eventlog.sources import GrpcLogReader
from modelog._client import Connection
from modelog._gen.monitoring.v1 import monitoring_pb2 as pb
from modelog._gen.monitoring.v1 import monitoring_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2 as rpb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog.shared.settings import SERVICES, Settings
from modelog_platform.app import Platform, start_server
from modelog_services.monitoring.service import MonitorService
from tests.conftest import dsn_for_database
from tests.waiting import wait_until_async

NUMERICAL = ("n0", "n1", "n2", "n3")
CATEGORICAL = ("c0", "c1")
CATEGORIES = np.array(["a", "b", "c", "d"])


def frame(rows: int, seed: int, shift: float = 0.0, first_id: int = 0, target: bool = False) -> pa.Table:
    """Customers: numerical features ~ N(shift, 1), categories skewed when shifted, a churn prediction
    from n0, ids from `first_id`."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {n: rng.normal(shift, 1.0, rows) for n in NUMERICAL}
    p = [0.1, 0.2, 0.3, 0.4] if shift else [0.4, 0.3, 0.2, 0.1]
    for c in CATEGORICAL:
        cols[c] = CATEGORIES[rng.choice(4, rows, p=p)]
    n0 = np.asarray(cols["n0"])
    cols["churn"] = (n0 > 0.3).astype(np.int64)
    if target:
        cols["label"] = (n0 + rng.normal(0, 0.3, rows) > 0.3).astype(np.int64)
    cols["id"] = np.arange(first_id, first_id + rows, dtype=np.int64)
    return pa.table(cols)


def ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def spec(window_rows: int = 1000, **fields: object) -> pb.MonitorSpec:
    columns = [pb.Column(name=n, kind="numerical") for n in NUMERICAL]
    columns += [pb.Column(name=c, kind="categorical") for c in CATEGORICAL]
    base: dict[str, object] = {
        "columns": columns,
        "prediction_column": "churn",
        "target_column": "label",
        "id_column": "id",
        "task": "classification",
        "window_rows": window_rows,
        "metric_rules": [pb.MetricRule(metric="f1", op="below", threshold=0.8, retrain=False)],
    }
    return pb.MonitorSpec(**{**base, **fields})  # type: ignore[arg-type]


class MonitoringStack:
    def __init__(self, platform: Platform, port: int, admin: str, home: Path) -> None:
        self.platform, self.admin, self.home = platform, admin, home
        self.url = f"127.0.0.1:{port}"
        self.channel = grpc.aio.insecure_channel(
            self.url, options=[("grpc.max_send_message_length", 64 << 20)]
        )
        self.api = monitoring_pb2_grpc.MonitoringStub(self.channel)
        self.registry = registry_pb2_grpc.RegistryStub(self.channel)
        self.tracking = tracking_pb2_grpc.TrackingStub(self.channel)
        self.reference = ""

    @property
    def service(self) -> MonitorService:
        service: MonitorService = self.platform.monitoring  # type: ignore[attr-defined]
        return service

    def md(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.admin}")]

    async def head(self) -> int:
        return (await self.platform.stores["monitoring"].head())[0]

    async def events(self, monitor: str) -> list[RecordedEvent]:
        return await self.platform.stores["monitoring"].read_stream(f"monitor-{monitor}")

    async def log_artifact(
        self, name: str, kind: str, files: dict[str, bytes], run_id: str | None = None
    ) -> art.ArtifactVersion:
        work = self.home / "work" / uuid.uuid4().hex
        work.mkdir(parents=True)
        for path, data in files.items():
            (work / path).write_bytes(data)

        def log() -> art.ArtifactVersion:
            with Connection(self.url, self.admin) as conn:
                return art.log_artifacts(work, name=name, kind=kind, run_id=run_id, conn=conn)

        return await asyncio.to_thread(log)

    async def setup_model_and_reference(self) -> None:
        """`customers:v1` holding ref.parquet and ref.csv (2,000 rows), and `churn@champion`."""
        table = frame(2000, seed=0, target=True)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        csv = pa.BufferOutputStream()
        pa.csv.write_csv(table.drop_columns(["n3"]), csv)
        files = {
            "ref.parquet": bytes(sink.getvalue()),
            "no-n3.csv": bytes(csv.getvalue()),
            "notes.txt": b"hi",
        }
        dataset = await self.log_artifact("customers", "dataset", files)
        self.reference = f"{dataset.name}:v{dataset.version}"
        run = await self.tracking.StartRun(
            tpb.StartRunRequest(experiment_name="churn", create_experiment=True), metadata=self.md()
        )
        run_id = run.run.info.run_id
        package = await self.log_artifact(
            "churn-model", "model", {"model.pkl": uuid.uuid4().bytes * 10}, run_id
        )
        await self.registry.CreateModelVersion(
            rpb.CreateModelVersionRequest(
                model="churn",
                artifact=rpb.ArtifactRef(name=package.name, version=package.version),
                create_model=True,
            ),
            metadata=self.md(),
        )
        await self.registry.SetAlias(
            rpb.SetAliasRequest(model="churn", alias="champion", version=1), metadata=self.md()
        )

    async def create(self, name: str, **spec_fields: object) -> pb.Monitor:
        resp = await self.api.CreateMonitor(
            pb.CreateMonitorRequest(
                name=name,
                model="churn@champion",
                deployment="eu-west",
                spec=spec(**spec_fields),  # type: ignore[arg-type]
                reference=self.reference,
                reference_path="ref.parquet",
            ),
            metadata=self.md(),
        )
        return resp.monitor

    async def log(self, monitor: str, *tables: pa.Table) -> pb.LogPredictionsResponse:
        async def requests() -> AsyncIterator[pb.LogPredictionsRequest]:
            for t in tables:
                yield pb.LogPredictionsRequest(monitor=monitor, arrow=ipc(t))

        resp: pb.LogPredictionsResponse = await self.api.LogPredictions(requests(), metadata=self.md())
        return resp

    async def profiled(self, monitor: str, window: int, within: float = 30.0) -> pb.Window:
        """Wait until the window's background profiling is recorded."""

        async def done() -> pb.Window | None:
            request = pb.GetWindowRequest(monitor=monitor, window=window)
            w = (await self.api.GetWindow(request, metadata=self.md())).window
            return w if w.status == "profiled" else None

        return await wait_until_async(done, within, f"window {window} of {monitor} to be profiled")


@pytest.fixture(scope="module")
async def mstack(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MonitoringStack]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_conn = await asyncpg.connect(pg_dsn)
    await admin_conn.execute(f"CREATE DATABASE {name}")
    await admin_conn.close()
    home = tmp_path_factory.mktemp("monitoring-home")
    platform = await Platform.open(
        Settings(home=home, addr="127.0.0.1:0"), dsn_for_database(pg_dsn, name), SERVICES
    )
    await platform.ensure_admin_token()
    server = await start_server(platform, "127.0.0.1:0")
    internal = await platform.ensure_internal_token()
    platform.start_bus(None, GrpcLogReader(f"127.0.0.1:{server.port}", internal))
    admin = (home / "admin-token").read_text().strip()
    stack = MonitoringStack(platform, server.port, admin, home)
    await stack.setup_model_and_reference()
    try:
        yield stack
    finally:
        with contextlib.suppress(Exception):
            await stack.channel.close()
            await server.stop(0)
            await platform.close()
        admin_conn = await asyncpg.connect(pg_dsn)
        await admin_conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin_conn.close()
