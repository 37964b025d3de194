"""Every method of every servicer against every role: allowed, or refused before the handler with
nothing written. Driven by the served APIs' descriptors, so a method added without a rule is caught."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory

from modelog.shared.settings import Settings
from modelog_platform.app import Platform, StartupError, start_server
from modelog_platform.authz import Perm
from modelog_services import permissions
from tests.security.stackfix import SecurityStack, heads

pytestmark = pytest.mark.asyncio

ROLES = ("viewer", "member", "admin")
RANK = {"viewer": {Perm.READ}, "member": {Perm.READ, Perm.EDIT}, "admin": set(Perm)}
FOLLOWING = {"/modelog.eventlog.v1.EventLog/Tail", "/modelog.audit.v1.Audit/Subscribe"}
"""Streams that follow the log for ever when allowed: ended by a short deadline."""


def _load_apis() -> None:
    """Import every generated module, so the default descriptor pool knows every service."""
    import modelog._gen as gen

    for info in pkgutil.walk_packages(gen.__path__, "modelog._gen."):
        if info.name.endswith("_pb2"):
            importlib.import_module(info.name)


_load_apis()


def served() -> list[tuple[str, object]]:
    pool = descriptor_pool.Default()
    out = []
    for service in permissions.TABLE:
        for m in pool.FindServiceByName(service).methods:
            out.append((f"/{service}/{m.name}", m))
    return out


@pytest.mark.asyncio(loop_scope="session")
async def test_the_table_names_every_method_of_every_served_api_and_nothing_else() -> None:
    pool = descriptor_pool.Default()
    for service, methods in permissions.TABLE.items():
        declared = {m.name for m in pool.FindServiceByName(service).methods}
        assert set(methods) == declared, service


HANDLER_REFUSALS = {"/modelog.artifacts.v1.Artifacts/IngestLocal": "proof file"}
"""Refusals that are not about who calls but about what it proves (IngestLocal: the same host)."""


async def call(stack: SecurityStack, method: str, desc: object, token: str) -> tuple[grpc.StatusCode, str]:
    """The method with an empty request (one empty message for client streams)."""
    req_cls = message_factory.GetMessageClass(desc.input_type)  # type: ignore[attr-defined]
    resp_cls = message_factory.GetMessageClass(desc.output_type)  # type: ignore[attr-defined]
    md = [("authorization", f"Bearer {token}")]
    ser, de = req_cls.SerializeToString, resp_cls.FromString
    timeout = 1.0 if method in FOLLOWING else 20.0
    ch = stack.channel
    try:
        if desc.client_streaming and desc.server_streaming:  # type: ignore[attr-defined]
            async for _ in ch.stream_stream(method, ser, de)(iter([req_cls()]), metadata=md, timeout=timeout):
                break
        elif desc.client_streaming:  # type: ignore[attr-defined]
            await ch.stream_unary(method, ser, de)(iter([req_cls()]), metadata=md, timeout=timeout)
        elif desc.server_streaming:  # type: ignore[attr-defined]
            async for _ in ch.unary_stream(method, ser, de)(req_cls(), metadata=md, timeout=timeout):
                break
        else:
            await ch.unary_unary(method, ser, de)(req_cls(), metadata=md, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("role", ROLES)
async def test_every_method_for_every_role_is_allowed_or_refused_writing_nothing(
    stack: SecurityStack, role: str
) -> None:
    token = await stack.token(f"t-{role}", role)
    rules = permissions.rules()
    refused_as_expected = allowed = 0
    for method, desc in served():
        rule = rules[method]
        before = await heads(stack.platform)
        code, details = await call(stack, method, desc, token)
        if code == grpc.StatusCode.PERMISSION_DENIED and HANDLER_REFUSALS.get(method, "\0") in details:
            code = grpc.StatusCode.FAILED_PRECONDITION  # allowed by the table, refused by the handler
        needs = rule.perm
        may = needs is None or needs in RANK[role]
        if may:
            assert code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), (
                role,
                method,
                code,
            )
            allowed += 1
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (role, method, code)
            assert await heads(stack.platform) == before, f"{method} wrote while refusing {role}"
            refused_as_expected += 1
    assert allowed + refused_as_expected == len(served())
    print(f"{role}: {allowed} allowed, {refused_as_expected} refused")


async def test_a_servicer_method_missing_from_the_table_stops_start_up(
    fresh_db: str, modelog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trimmed = {s: dict(m) for s, m in permissions.TABLE.items()}
    del trimmed["modelog.tracking.v1.Tracking"]["StartRun"]
    monkeypatch.setattr(permissions, "TABLE", trimmed)
    platform = await Platform.open(Settings(home=modelog_home, addr="127.0.0.1:0"), fresh_db)
    try:
        await platform.ensure_admin_token()
        with pytest.raises(StartupError, match=r"/modelog.tracking.v1.Tracking/StartRun"):
            await start_server(platform, "127.0.0.1:0")
    finally:
        await platform.close()


async def test_a_viewer_cannot_start_runs_log_metrics_or_delete_experiments(stack: SecurityStack) -> None:
    """What a new user saw: a viewer token started a run, logged metrics and deleted an experiment."""
    from modelog._gen.tracking.v1 import tracking_pb2 as pb
    from modelog._gen.tracking.v1 import tracking_pb2_grpc

    api = tracking_pb2_grpc.TrackingStub(stack.channel)
    admin = [("authorization", f"Bearer {stack.admin}")]
    exp = await api.CreateExperiment(pb.CreateExperimentRequest(name="churn"), metadata=admin)
    run = await api.StartRun(pb.StartRunRequest(experiment_id=exp.experiment.experiment_id), metadata=admin)
    viewer = [("authorization", f"Bearer {await stack.token('viewer1', 'viewer')}")]
    before = await heads(stack.platform)
    attempts = [
        api.StartRun(pb.StartRunRequest(experiment_id=exp.experiment.experiment_id), metadata=viewer),
        api.LogMetricsBatch(
            pb.MetricBatch(
                run_id=run.run.info.run_id, keys=["loss"], values=[0.5], steps=[0], timestamps_ms=[1]
            ),
            metadata=viewer,
        ),
        api.DeleteExperiment(
            pb.DeleteExperimentRequest(experiment_id=exp.experiment.experiment_id), metadata=viewer
        ),
    ]
    for attempt in attempts:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await attempt
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'viewer1' may not change" in (info.value.details() or "")
    stream = api.LogMetrics(
        iter(
            [
                pb.MetricBatch(
                    run_id=run.run.info.run_id, keys=["a"], values=[1.0], steps=[0], timestamps_ms=[1]
                )
            ]
        ),
        metadata=viewer,
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stream
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await heads(stack.platform) == before
    got = await api.GetRun(pb.GetRunRequest(run_id=run.run.info.run_id), metadata=viewer)  # reading is fine
    assert got.run.info.run_id == run.run.info.run_id
