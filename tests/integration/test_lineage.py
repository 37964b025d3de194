"""The lineage graph and timelines over a realistic flow, fed by the real broker: dataset version -> run ->
model artifact -> model version -> alias/stage -> monitor; as-of answers; rebuild == live row for row."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import Metadata, NewEvent
from eventlog.sources import GrpcLogReader
from modelog._gen.audit.v1 import lineage_pb2 as lpb
from modelog._gen.audit.v1 import lineage_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog.shared.settings import Settings
from modelog_platform.app import Platform, start_server
from modelog_services.audit.lineage import LineageGraph
from modelog_services.audit.lineage_facts import SOURCES
from tests.contracts import assert_rebuild_equals_live
from tests.integration.test_registry_stack import Node, RegistryStack
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio
SERVICES = ("tracking", "artifacts", "registry", "monitoring", "audit")


@dataclass
class Flow:
    stack: RegistryStack
    lineage: lineage_pb2_grpc.LineageStub
    run_id: str
    dataset: str
    """The dataset artifact version's manifest digest."""
    model_id: str
    before_v2: datetime
    """An instant when champion pointed at version 1 and version 1 was in Production."""


def ts(at: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(at)
    return out


async def caught_up(platform: Platform) -> bool:
    heads = {s: (await platform.stores[s].head())[0] for s in SOURCES}
    rows = await platform.pool.fetch(
        "SELECT source, position FROM audit.projection_checkpoints WHERE projection = 'lineage'"
    )
    done = {r["source"]: r["position"] for r in rows}
    return all(done.get(s, 0) == h for s, h in heads.items())


async def configure_monitor(stack: RegistryStack, name: str, model_ref: str, reference: str) -> None:
    """The monitoring service's MonitorConfigured, as its events.py defines it (its API comes later)."""
    body = {
        "name": name,
        "model": model_ref.split("@")[0].split("/")[0],
        "model_ref": model_ref,
        "model_version": 1,
        "deployment": "prod",
        "config": {"columns": [{"name": "tenure", "kind": "numerical"}]},
        "reference": reference,
    }
    await stack.platform.stores["monitoring"].append(
        f"monitor-{name}", None, [NewEvent("MonitorConfigured", 1, json.dumps(body))], Metadata(actor="carol")
    )


@pytest.fixture(scope="module")
async def flow(
    pg_dsn: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Flow]:
    import asyncpg

    db = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f"CREATE DATABASE {db}")
    await admin.close()
    from tests.conftest import dsn_for_database

    home: Path = tmp_path_factory.mktemp("lineage-home")
    settings = Settings(home=home, addr="127.0.0.1:0", topic_prefix=f"t{uuid.uuid4().hex[:10]}")
    platform = await Platform.open(settings, dsn_for_database(pg_dsn, db), services=SERVICES)
    await platform.ensure_admin_token()
    server = await start_server(platform, "127.0.0.1:0")
    internal = await platform.ensure_internal_token()
    platform.start_bus(kafka_bootstrap, GrpcLogReader(f"127.0.0.1:{server.port}", internal))
    node = Node(platform, server)
    stack = RegistryStack(node, home, (home / "admin-token").read_text().strip())
    for name in ("alice", "bob"):
        await stack.user(name, "member")

    data = await stack.model_artifact(None, name="churn-data", kind="dataset")
    run_id = await stack.trained_run(finish=False)
    await stack.tracking.LogDatasetInput(
        tpb.LogDatasetInputRequest(
            run_id=run_id,
            dataset=tpb.DatasetInput(name="churn-data", digest=f"sha256:{data.manifest_digest}"),
        ),
        metadata=stack.md(),
    )
    await stack.tracking.FinishRun(
        tpb.FinishRunRequest(run_id=run_id, status=tpb.RUN_STATUS_FINISHED), metadata=stack.md()
    )
    v1 = await stack.version("churn", run_id=run_id)
    await stack.api.SetAlias(
        pb.SetAliasRequest(model="churn", alias="champion", version=1), metadata=stack.md()
    )
    await stack.promote("churn", 1, pb.STAGE_STAGING, "alice")
    await stack.promote("churn", 1, pb.STAGE_PRODUCTION, "alice", "bob")
    await configure_monitor(stack, "churn-prod", "churn@champion", "churn-data:v1")
    await wait_until_async(lambda: caught_up(platform), 30, "the lineage view to catch up")
    before_v2 = datetime.now(UTC)
    await stack.version("churn")
    await stack.api.SetAlias(
        pb.SetAliasRequest(model="churn", alias="champion", version=2), metadata=stack.md()
    )
    await stack.promote("churn", 2, pb.STAGE_STAGING, "alice")
    await stack.promote("churn", 2, pb.STAGE_PRODUCTION, "alice", "bob")  # archives version 1
    await wait_until_async(lambda: caught_up(platform), 30, "the lineage view to catch up")
    yield Flow(
        stack,
        lineage_pb2_grpc.LineageStub(node.channel),
        run_id,
        data.manifest_digest,
        v1.model_id,
        before_v2,
    )
    await node.close()
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    await admin.close()


async def graph(
    f: Flow, entity: str, direction: lpb.Direction.ValueType, at: datetime | None = None
) -> lpb.GetLineageResponse:
    req = lpb.GetLineageRequest(entity=entity, direction=direction)
    if at is not None:
        req.as_of.CopyFrom(ts(at))
    resp: lpb.GetLineageResponse = await f.lineage.GetLineage(req, metadata=f.stack.md())
    return resp


def labelled(resp: lpb.GetLineageResponse) -> set[tuple[str, str, str]]:
    label = {n.id: n.label for n in resp.nodes}
    return {(label[e.src], e.relation, label[e.dst]) for e in resp.edges}


async def test_upstream_of_a_monitor_reaches_the_dataset_through_the_version_champion_points_at(
    flow: Flow,
) -> None:
    data, run = f"dataset:{flow.dataset}", f"run:{flow.run_id}"
    now = labelled(await graph(flow, "monitor:churn-prod", lpb.DIRECTION_UPSTREAM))
    assert ("model:churn@champion", "monitors", "monitor:churn-prod") in now
    assert ("artifact:churn-data:v1", "reference", "monitor:churn-prod") in now
    assert ("model:churn/2", "alias", "model:churn@champion") in now
    assert ("model:churn/1", "alias", "model:churn@champion") not in now

    then = labelled(await graph(flow, "monitor:churn-prod", lpb.DIRECTION_UPSTREAM, flow.before_v2))
    assert {
        ("model:churn/1", "alias", "model:churn@champion"),
        ("artifact:churn-model:v1", "packaged", "model:churn/1"),
        (run, "trained", "model:churn/1"),
        (run, "produced", "artifact:churn-model:v1"),
        (data, "input", run),
        ("artifact:churn-data:v1", "content", data),
    } <= then
    assert not any("churn/2" in a or "churn/2" in b for a, _, b in then)


async def test_downstream_of_the_dataset_version_reaches_model_stage_and_monitor(flow: Flow) -> None:
    resp = await graph(flow, "artifact:churn-data@1", lpb.DIRECTION_DOWNSTREAM, flow.before_v2)
    assert resp.root == "artifact:churn-data:v1"
    edges = labelled(resp)
    assert ("model:churn/1", "stage", "model:churn#Production") in edges
    assert ("model:churn@champion", "monitors", "monitor:churn-prod") in edges
    kinds = {n.label: n.kind for n in resp.nodes}
    assert kinds["model:churn/1"] == "model_version" and kinds[f"run:{flow.run_id}"] == "run"
    assert json.loads(next(n.attrs_json for n in resp.nodes if n.label == "model:churn/1"))["version"] == 1

    production_now = labelled(await graph(flow, "model:churn#production", lpb.DIRECTION_UPSTREAM))
    assert ("model:churn/2", "stage", "model:churn#Production") in production_now
    assert ("model:churn/1", "stage", "model:churn#Production") not in production_now
    archived = labelled(await graph(flow, "model:churn#Archived", lpb.DIRECTION_UPSTREAM))
    assert ("model:churn/1", "stage", "model:churn#Archived") in archived


async def test_timelines_gather_every_log_touching_an_entity_and_page(flow: Flow) -> None:
    md = flow.stack.md()
    run = await flow.lineage.Timeline(lpb.TimelineRequest(entity=f"run:{flow.run_id}"), metadata=md)
    services = [e.service for e in run.entries]
    assert {"tracking", "artifacts", "registry"} <= set(services)
    types = [e.type for e in run.entries]
    assert types[0] == "RunStarted" and "ModelVersionCreated" in types and "ArtifactVersionCommitted" in types
    assert [e.recorded_at.ToDatetime() for e in run.entries] == sorted(
        e.recorded_at.ToDatetime() for e in run.entries
    )

    pages, token = [], ""
    while True:
        page = await flow.lineage.Timeline(
            lpb.TimelineRequest(entity="model:churn/1", limit=2, page_token=token), metadata=md
        )
        pages.append(page.entries)
        token = page.next_page_token
        if not token:
            break
    entries = [e for p in pages for e in p]
    assert len(pages) > 2 and all(len(p) <= 2 for p in pages)
    summaries = [e.summary for e in entries]
    assert summaries[0].startswith("admin created version 1 from run")
    assert "bob approved request" in " ".join(summaries)
    assert any("moved from Production to Archived" in s for s in summaries)

    then = await flow.lineage.Timeline(
        lpb.TimelineRequest(entity="model:churn/1", as_of=ts(flow.before_v2)), metadata=md
    )
    assert not any("Archived" in e.summary for e in then.entries) and len(then.entries) < len(entries)


async def test_bad_entities_and_instants_are_refused_clearly(flow: Flow) -> None:
    md = flow.stack.md()
    cases = [
        (lpb.GetLineageRequest(entity="churn/1"), grpc.StatusCode.INVALID_ARGUMENT, "write <kind>:<id>"),
        (lpb.GetLineageRequest(entity="model:nope/1"), grpc.StatusCode.NOT_FOUND, "no model named 'nope'"),
        (lpb.GetLineageRequest(entity="model:churn#Prod"), grpc.StatusCode.INVALID_ARGUMENT, "stages are"),
        (lpb.GetLineageRequest(entity="run:r", depth=99), grpc.StatusCode.INVALID_ARGUMENT, "depth"),
        (
            lpb.GetLineageRequest(
                entity="monitor:churn-prod", as_of=ts(datetime.now(UTC) + timedelta(days=1))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "in the future",
        ),
        (
            lpb.GetLineageRequest(entity="monitor:churn-prod", as_of=ts(datetime(2020, 1, 1, tzinfo=UTC))),
            grpc.StatusCode.NOT_FOUND,
            "not in the lineage view as of 2020-01-01",
        ),
    ]
    for req, code, text in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await flow.lineage.GetLineage(req, metadata=md)
        assert info.value.code() == code and text in (info.value.details() or ""), info.value.details()


async def test_rebuilding_the_lineage_view_equals_the_live_one_row_for_row(flow: Flow) -> None:
    platform = flow.stack.platform
    await assert_rebuild_equals_live(platform.pool, LineageGraph(), platform.stores)
