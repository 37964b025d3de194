"""The Monitoring gRPC API in-process on a real PostgreSQL, calling the real registry and artifacts APIs:
no false drift on an unshifted window, two shifted windows raise an alert and a retraining request that
a subscriber of the audit service sees, late labels update a window's performance, time windows close
on their timer, bad input writes nothing, and rebuild == live."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import grpc
import numpy as np
import pyarrow as pa
import pytest

from eventlog import Metadata
from modelog import audit
from modelog._client import Connection
from modelog._gen.monitoring.v1 import monitoring_pb2 as pb
from modelog_services.monitoring.domain import SealWindow
from modelog_services.monitoring.projections import MonitoringView
from modelog_services.monitoring.service import MonitorService
from tests.contracts import assert_rebuild_equals_live
from tests.integration.monitoring_stack import MonitoringStack, frame, ipc, mstack, spec

pytestmark = pytest.mark.asyncio(loop_scope="session")
__all__ = ["mstack"]


async def refused(
    stack: MonitoringStack, code: grpc.StatusCode, call: Callable[[], Awaitable[object]], text: str = ""
) -> str:
    """Makes `call()`, asserts it fails with `code` (and `text`), and that the monitoring log did not
    move. The head is read before the call is made: a grpc.aio call starts as soon as it exists."""
    head = await stack.head()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call()
    details = info.value.details() or ""
    assert info.value.code() == code, details
    assert text in details, details
    assert await stack.head() == head, "a refused call wrote to the monitoring log"
    return details


async def test_shifted_windows_raise_drift_an_alert_and_a_retrain_request_a_subscriber_sees(
    mstack: MonitoringStack,
) -> None:
    created = await mstack.create("churn-prod")
    assert (created.model, created.model_ref, created.model_version) == ("churn", "churn@champion", 1)
    assert created.baseline.rows == 2000 and created.baseline.reference == mstack.reference
    assert created.baseline.performance["f1"] > 0.8  # the reference carries its target and prediction

    conn = Connection(mstack.url, mstack.admin)
    sub = audit.subscribe(
        ["monitoring.RetrainRequested"], from_cursor="start", heartbeat_s=0.2, connection=conn
    )
    seen = asyncio.create_task(asyncio.wait_for(asyncio.to_thread(next, sub), 30.0))

    # Window 1: unshifted, in two batches. Windows 2 and 3: shifted, a batch spanning both.
    first = await mstack.log("churn-prod", frame(600, seed=1), frame(400, seed=2, first_id=600))
    assert list(first.closed_windows) == [1] and first.rows == 1000
    clean = await mstack.profiled("churn-prod", 1)
    assert not clean.dataset_drift and list(clean.drifted_columns) == [] and clean.rows == 1000

    shifted = await mstack.log("churn-prod", frame(1500, seed=3, shift=1.5, first_id=1000))
    assert list(shifted.closed_windows) == [2]
    later = await mstack.log("churn-prod", frame(500, seed=4, shift=1.5, first_id=2500))
    assert list(later.closed_windows) == [3]
    for n in (2, 3):
        w = await mstack.profiled("churn-prod", n)
        assert w.dataset_drift and w.rows == 1000
        assert {"n0", "n1", "n2", "n3", "c0", "c1"} <= set(w.drifted_columns)

    types = [e.type for e in await mstack.events("churn-prod")]
    assert types.count("DriftDetected") == 2 and types.count("AlertRaised") == 1
    assert types.count("RetrainRequested") == 1 and types.count("WindowProfiled") == 3
    alerts = (
        await mstack.api.ListAlerts(pb.ListAlertsRequest(monitor="churn-prod"), metadata=mstack.md())
    ).alerts
    assert [(a.kind, a.window, a.status, a.retrain_requested) for a in alerts] == [("drift", 3, "open", True)]

    event = await seen
    assert event.qualified_type == "monitoring.RetrainRequested"
    assert (event.payload["model"], event.payload["model_version"], event.payload["window"]) == (
        "churn",
        1,
        3,
    )
    sub.close()
    conn.close()

    window = (
        await mstack.api.GetWindow(pb.GetWindowRequest(monitor="churn-prod", window=1), metadata=mstack.md())
    ).window
    drift = json.loads(window.drift_json)
    assert drift["dataset_drift"] is False and len(drift["columns"]) >= 6
    assert {p["name"] for p in json.loads(window.profile_json)} >= {"n0", "c0"}

    resolved = await mstack.api.ResolveAlert(
        pb.ResolveAlertRequest(monitor="churn-prod", alert_id=alerts[0].alert_id, comment="retrained as v2"),
        metadata=mstack.md(),
    )
    assert (resolved.alert.status, resolved.alert.resolved_by) == ("resolved", "admin")


async def test_late_labels_update_the_windows_holding_those_ids(mstack: MonitoringStack) -> None:
    await mstack.create("churn-labels", window_rows=500)
    rows = frame(1000, seed=5, first_id=10_000)
    await mstack.log("churn-labels", rows)
    await mstack.profiled("churn-labels", 2)
    ids = rows.column("id").to_numpy()
    pred = rows.column("churn").to_numpy()

    # Window 1: labels agree with the predictions except every 20th; window 2's first half: inverted.
    truth1 = pred[:500].copy()
    truth1[::20] = 1 - truth1[::20]
    labels = pa.table({"id": ids[:500], "label": truth1})
    resp = await mstack.api.LogLabels(
        pb.LogLabelsRequest(monitor="churn-labels", arrow=ipc(labels)), metadata=mstack.md()
    )
    assert (resp.rows, resp.matched, list(resp.windows)) == (500, 500, [1])
    w1 = await mstack.api.GetWindow(
        pb.GetWindowRequest(monitor="churn-labels", window=1), metadata=mstack.md()
    )
    tp = int(((truth1 == 1) & (pred[:500] == 1)).sum())
    f1 = (
        2
        * tp
        / (
            2 * tp
            + int(((truth1 == 0) & (pred[:500] == 1)).sum())
            + int(((truth1 == 1) & (pred[:500] == 0)).sum())
        )
    )
    assert w1.window.labelled_rows == 500
    assert w1.window.performance["accuracy"] == pytest.approx(0.95, abs=1e-12)
    assert w1.window.performance["f1"] == pytest.approx(f1, abs=1e-12)

    inverted = pa.table({"id": ids[500:750], "label": 1 - pred[500:750]})
    head = await mstack.head()
    await mstack.api.LogLabels(
        pb.LogLabelsRequest(monitor="churn-labels", arrow=ipc(inverted)), metadata=mstack.md()
    )
    w2 = (
        await mstack.api.GetWindow(
            pb.GetWindowRequest(monitor="churn-labels", window=2), metadata=mstack.md()
        )
    ).window
    assert w2.labelled_rows == 250 and w2.performance["accuracy"] == 0.0
    new = [e.type for e in await mstack.platform.stores["monitoring"].read_log(head + 1, 100)]
    assert new == ["LabelsLogged", "PerformanceDegraded", "AlertRaised"]  # the rule does not retrain

    # The rest of window 2's labels arrive, correct this time: its metrics cover all 500 now.
    rest = pa.table({"id": ids[750:], "label": pred[750:]})
    await mstack.api.LogLabels(
        pb.LogLabelsRequest(monitor="churn-labels", arrow=ipc(rest)), metadata=mstack.md()
    )
    w2 = (
        await mstack.api.GetWindow(
            pb.GetWindowRequest(monitor="churn-labels", window=2), metadata=mstack.md()
        )
    ).window
    assert w2.labelled_rows == 500 and w2.performance["accuracy"] == pytest.approx(0.5)


async def test_a_time_window_closes_on_its_timer(mstack: MonitoringStack) -> None:
    await mstack.create("churn-timed", window_rows=0, window_seconds=1)
    resp = await mstack.log("churn-timed", frame(300, seed=6))
    assert list(resp.closed_windows) == []
    w = await mstack.profiled("churn-timed", 1, within=10)
    assert w.rows == 300
    closed = [
        json.loads(e.payload_json) for e in await mstack.events("churn-timed") if e.type == "WindowClosed"
    ]
    assert closed[0]["reason"] == "time"


async def test_bad_input_is_refused_with_a_clear_error_and_writes_nothing(mstack: MonitoringStack) -> None:
    api, md, ref = mstack.api, mstack.md(), mstack.reference

    def create(**fields: object) -> object:
        base: dict[str, object] = {
            "name": "bad",
            "model": "churn@champion",
            "spec": spec(),
            "reference": ref,
            "reference_path": "ref.parquet",
        }
        return api.CreateMonitor(pb.CreateMonitorRequest(**{**base, **fields}), metadata=md)  # type: ignore[arg-type]

    await refused(mstack, grpc.StatusCode.NOT_FOUND, lambda: create(model="nope@champion"), "nope")
    await refused(mstack, grpc.StatusCode.NOT_FOUND, lambda: create(model="churn@nobody"), "nobody")
    await refused(
        mstack, grpc.StatusCode.NOT_FOUND, lambda: create(reference_path="missing.parquet"), "missing.parquet"
    )
    await refused(
        mstack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: create(reference_path="no-n3.csv"),
        "'n3' is missing",
    )
    await refused(
        mstack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: create(reference_path="notes.txt"),
        "neither Parquet",
    )
    await refused(
        mstack, grpc.StatusCode.INVALID_ARGUMENT, lambda: create(spec=spec(window_rows=0)), "window policy"
    )
    await refused(
        mstack, grpc.StatusCode.INVALID_ARGUMENT, lambda: create(reference_path=""), "name the one to use"
    )
    await refused(
        mstack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: create(spec=spec(columns=[pb.Column(name="n0", kind="weird")])),
        "spec.columns[0].kind",
    )

    await mstack.create("strict")
    good = frame(10, seed=7)
    bad_calls = {
        "not in the monitor's schema": good.append_column("extra", pa.array(range(10))),
        "'n1' is missing": good.drop_columns(["n1"]),
        "not numbers": good.set_column(0, "n0", pa.array(["x"] * 10)),
        "not an Arrow IPC stream": b"garbage",
    }
    for text, table in bad_calls.items():
        data = table if isinstance(table, bytes) else ipc(table)

        async def one(data: bytes = data) -> object:
            async def it():  # type: ignore[no-untyped-def]
                yield pb.LogPredictionsRequest(monitor="strict", arrow=data)

            return await api.LogPredictions(it(), metadata=md)

        await refused(mstack, grpc.StatusCode.INVALID_ARGUMENT, one, text)
    await refused(
        mstack, grpc.StatusCode.NOT_FOUND, lambda: mstack.log("nobody", good), "no monitor named 'nobody'"
    )
    close = pb.CloseWindowRequest(monitor="strict")
    await refused(
        mstack,
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: api.CloseWindow(close, metadata=md),
        "has no rows",
    )
    labels = pa.table({"id": np.array([99_999_999]), "label": np.array([1])})
    unmatched = pb.LogLabelsRequest(monitor="strict", arrow=ipc(labels))
    await refused(
        mstack, grpc.StatusCode.FAILED_PRECONDITION, lambda: api.LogLabels(unmatched, metadata=md), "matches"
    )
    report = pb.GetReportRequest(monitor="strict")
    await refused(
        mstack,
        grpc.StatusCode.NOT_FOUND,
        lambda: api.GetReport(report, metadata=md),
        "has no profiled window yet",
    )


async def test_rebuilding_the_monitoring_view_from_position_zero_equals_the_live_one(
    mstack: MonitoringStack,
) -> None:
    await mstack.create("churn-rebuild", window_rows=300)
    await mstack.log("churn-rebuild", frame(650, seed=8, shift=2.0))
    await mstack.profiled("churn-rebuild", 2)
    await mstack.api.CloseWindow(pb.CloseWindowRequest(monitor="churn-rebuild"), metadata=mstack.md())
    await mstack.profiled("churn-rebuild", 3)
    await assert_rebuild_equals_live(mstack.platform.pool, MonitoringView(), mstack.platform.stores)


async def test_a_baseline_from_uploaded_rows_replaces_the_reference(mstack: MonitoringStack) -> None:
    await mstack.create("churn-rebased", window_rows=1000)
    shifted = frame(30_000, seed=9, shift=1.5)  # a ~2 MB Parquet blob: uploaded in chunks, not whole
    resp = await mstack.api.SetBaseline(
        pb.SetBaselineRequest(monitor="churn-rebased", arrow=ipc(shifted)), metadata=mstack.md()
    )
    assert (resp.monitor.baseline.rows, resp.monitor.baseline.reference) == (30_000, "")
    # Against the new reference the shifted window is the norm and drifts no more.
    await mstack.log("churn-rebased", frame(1000, seed=10, shift=1.5))
    assert not (await mstack.profiled("churn-rebased", 1)).dataset_drift
    bad = pb.SetBaselineRequest(monitor="churn-rebased", arrow=ipc(shifted.drop_columns(["c1"])))
    await refused(
        mstack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: mstack.api.SetBaseline(bad, metadata=mstack.md()),
        "'c1'",
    )


async def test_a_window_left_closed_by_a_stopped_process_is_profiled_from_its_blobs(
    mstack: MonitoringStack,
) -> None:
    await mstack.create("churn-restart", window_rows=10_000)
    await mstack.log("churn-restart", frame(700, seed=12, shift=2.0), frame(300, seed=13, shift=2.0))
    # Sealed without profiling, as if the process died right after the close was recorded.
    state = await mstack.service.state("churn-restart")
    await mstack.service.execute(
        "churn-restart", SealWindow(state.open_window, "manual", datetime.now(UTC)), Metadata(actor="admin")
    )
    w = (
        await mstack.api.GetWindow(
            pb.GetWindowRequest(monitor="churn-restart", window=1), metadata=mstack.md()
        )
    ).window
    assert w.status == "closed"
    # A new process: nothing in memory, so the window's rows come back from its Parquet blobs.
    fresh = MonitorService(mstack.platform.stores["monitoring"], mstack.service.peers)
    timers = asyncio.create_task(fresh.run_timers())
    try:
        profiled = await mstack.profiled("churn-restart", 1)
    finally:
        timers.cancel()
    assert profiled.rows == 1000 and profiled.dataset_drift


async def test_a_retried_create_returns_the_monitor_instead_of_already_exists(
    mstack: MonitoringStack,
) -> None:
    request = pb.CreateMonitorRequest(
        name="churn-retry",
        model="churn/1",
        spec=spec(),
        reference=mstack.reference,
        reference_path="ref.parquet",
    )
    md = [*mstack.md(), ("idempotency-key", "create-churn-retry-1")]
    first = await mstack.api.CreateMonitor(request, metadata=md)
    head = await mstack.head()
    again = await mstack.api.CreateMonitor(request, metadata=md)
    assert again.monitor == first.monitor and await mstack.head() == head
    assert first.monitor.model_version == 1 and first.monitor.baseline.path == "ref.parquet"
    other = mstack.md()  # another idempotency key: a second create of the same name
    await refused(
        mstack,
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: mstack.api.CreateMonitor(request, metadata=other),
        "churn-retry",
    )
