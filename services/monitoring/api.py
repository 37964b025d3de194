"""gRPC Monitoring: requests become commands for the monitor decider (through MonitorService, which
computes statistics first); replies come from the inline views.

No rule lives here: this layer checks who calls, turns protobuf into configuration and back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError

from eventlog import FailedPrecondition, InvalidArgument, Metadata, NotFound
from eventlog.commandpath import derive_key
from modelog._gen.monitoring.v1 import monitoring_pb2 as pb
from modelog._gen.monitoring.v1 import monitoring_pb2_grpc
from modelog_platform import context
from modelog_platform.grpc_errors import from_validation_error

from . import drift
from .domain import ResolveAlert, check_monitor_name
from .events import ColumnConfig, MetricRule, MonitorConfig
from .projections import VIEWS
from .report import render_report
from .service import MonitorService

MAX_WINDOWS = 1000


def _writer(scope: str) -> Metadata:
    """Event metadata of this request, its idempotency key scoped to one kind of append (a long key
    is hashed, never cut: two keys with a common prefix must stay two keys)."""
    rc = context.current()
    return rc.metadata().model_copy(update={"idempotency_key": derive_key(scope, rc.idempotency_key)})


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _column(c: pb.Column, i: int) -> ColumnConfig:
    try:
        return ColumnConfig(name=c.name, kind=c.kind, stattest=c.stattest, threshold=c.threshold or None)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=f"spec.columns[{i}].") from None


def _rule(r: pb.MetricRule, i: int) -> MetricRule:
    try:
        return MetricRule(metric=r.metric, op=r.op, threshold=r.threshold, retrain=r.retrain)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=f"spec.metric_rules[{i}].") from None


def config_of(spec: pb.MonitorSpec) -> MonitorConfig:
    columns = tuple(_column(c, i) for i, c in enumerate(spec.columns))
    rules = tuple(_rule(r, i) for i, r in enumerate(spec.metric_rules))
    try:
        return MonitorConfig(
            columns=columns,
            prediction=spec.prediction_column,
            target=spec.target_column,
            id_column=spec.id_column,
            timestamp_column=spec.timestamp_column,
            task=spec.task or None,  # type: ignore[arg-type]
            window_rows=spec.window_rows,
            window_seconds=spec.window_seconds,
            drift_share=spec.drift_share or 0.5,
            stattest=spec.stattest,
            threshold=spec.threshold or None,
            drift_windows=spec.drift_windows or 2,
            metric_rules=rules,
        )
    except ValidationError as exc:
        raise from_validation_error(exc, prefix="spec.") from None


def _check_stattests(config: MonitorConfig) -> None:
    for i, c in enumerate(config.columns):
        if c.stattest and c.stattest not in drift.STATTESTS:
            raise InvalidArgument.field(
                f"spec.columns[{i}].stattest", f"{c.stattest!r} is not one of {', '.join(drift.STATTESTS)}"
            )
    if config.stattest and config.stattest not in drift.STATTESTS:
        raise InvalidArgument.field(
            "spec.stattest", f"{config.stattest!r} is not one of {', '.join(drift.STATTESTS)}"
        )


def spec_pb(config: MonitorConfig) -> pb.MonitorSpec:
    return pb.MonitorSpec(
        columns=[
            pb.Column(name=c.name, kind=c.kind, stattest=c.stattest, threshold=c.threshold or 0.0)
            for c in config.columns
        ],
        prediction_column=config.prediction,
        target_column=config.target,
        id_column=config.id_column,
        timestamp_column=config.timestamp_column,
        task=config.task or "",
        window_rows=config.window_rows,
        window_seconds=config.window_seconds,
        drift_share=config.drift_share,
        stattest=config.stattest,
        threshold=config.threshold or 0.0,
        drift_windows=config.drift_windows,
        metric_rules=[
            pb.MetricRule(metric=r.metric, op=r.op, threshold=r.threshold, retrain=r.retrain)
            for r in config.metric_rules
        ],
    )


def monitor_pb(row: asyncpg.Record) -> pb.Monitor:
    config = MonitorConfig.model_validate_json(row["config"])
    baseline = None
    if row["baseline"] is not None:
        b = json.loads(row["baseline"])
        baseline = pb.Baseline(
            reference=b["artifact"] or b["reference"],
            path=b["path"],
            digest=b["digest"],
            rows=b["rows"],
            performance=b.get("performance") or {},
            set_at=_ts(row["baseline_at"]),
        )
    return pb.Monitor(
        name=row["name"],
        model=row["model"],
        model_ref=row["model_ref"],
        model_version=row["model_version"],
        deployment=row["deployment"],
        spec=spec_pb(config),
        baseline=baseline,
        open_window=row["open_window"],
        open_window_rows=row["open_rows"],
        windows_closed=row["windows_closed"],
        open_alerts=row["open_alerts"],
        created_by=row["created_by"],
        created_at=_ts(row["created_at"]),
        project=row["project"],
    )


def window_pb(row: asyncpg.Record, full: bool = False) -> pb.Window:
    return pb.Window(
        monitor=row["monitor"],
        window=row["window_no"],
        status=row["status"],
        rows=row["rows"],
        labelled_rows=row["labelled_rows"],
        dataset_drift=row["dataset_drift"],
        drift_share=row["drift_share"],
        drifted_columns=list(row["drifted_columns"]),
        performance=json.loads(row["performance"]),
        opened_at=_ts(row["opened_at"]),
        closed_at=_ts(row["closed_at"]),
        profiled_at=_ts(row["profiled_at"]),
        profile_json=(row["profile"] or "") if full else "",
        drift_json=(row["drift"] or "") if full else "",
    )


def alert_pb(row: asyncpg.Record) -> pb.Alert:
    return pb.Alert(
        alert_id=row["alert_id"],
        monitor=row["monitor"],
        kind=row["kind"],
        window=row["window_no"],
        message=row["message"],
        status=row["status"],
        retrain_requested=row["retrain_requested"],
        raised_at=_ts(row["raised_at"]),
        resolved_by=row["resolved_by"],
        resolution=row["resolution"],
        resolved_at=_ts(row["resolved_at"]),
    )


class MonitoringServicer(monitoring_pb2_grpc.MonitoringServicer):
    def __init__(self, service: MonitorService) -> None:
        self.service = service
        self.pool = service.pool

    async def _monitor(self, name: str) -> pb.Monitor:
        row = await self.pool.fetchrow(f"SELECT * FROM {VIEWS.monitors} WHERE name = $1", name)
        if row is None:
            raise NotFound(f"no monitor named {name!r}")
        return monitor_pb(row)

    async def _window_row(self, name: str, window: int) -> asyncpg.Record:
        await self._monitor(check_monitor_name(name, "monitor"))
        if window:
            row = await self.pool.fetchrow(
                f"SELECT * FROM {VIEWS.windows} WHERE monitor = $1 AND window_no = $2", name, window
            )
        else:
            row = await self.pool.fetchrow(
                f"SELECT * FROM {VIEWS.windows} WHERE monitor = $1 AND status = 'profiled' "
                "ORDER BY window_no DESC LIMIT 1",
                name,
            )
        if row is None:
            which = f"window {window}" if window else "profiled window yet"
            raise NotFound(f"monitor {name!r} has no {which}")
        return row

    async def CreateMonitor(
        self, request: pb.CreateMonitorRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.CreateMonitorResponse:
        metadata = _writer("create-monitor")
        check_monitor_name(request.name)
        config = config_of(request.spec)
        _check_stattests(config)
        await self.service.create(
            request.name,
            request.model,
            request.deployment,
            config,
            metadata,
            reference=request.reference,
            reference_path=request.reference_path,
            reference_arrow=request.reference_arrow,
            project=request.project,
        )
        return pb.CreateMonitorResponse(monitor=await self._monitor(request.name))

    async def GetMonitor(
        self, request: pb.GetMonitorRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetMonitorResponse:
        return pb.GetMonitorResponse(monitor=await self._monitor(check_monitor_name(request.name)))

    async def ListMonitors(
        self, request: pb.ListMonitorsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ListMonitorsResponse:
        visible = context.visible("monitor")
        rows = await self.pool.fetch(
            f"SELECT * FROM {VIEWS.monitors} WHERE ($1 = '' OR model = $1) "
            "AND ($2::text[] IS NULL OR project = ANY($2) OR name = ANY($3)) ORDER BY name",
            request.model,
            sorted(visible.projects) if visible is not None else None,
            sorted(visible.keys) if visible is not None else [],
        )
        return pb.ListMonitorsResponse(monitors=[monitor_pb(r) for r in rows])

    async def SetBaseline(
        self, request: pb.SetBaselineRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SetBaselineResponse:
        metadata = _writer("set-baseline")
        await self.service.set_baseline(
            request.monitor, request.reference, request.path, request.arrow, metadata
        )
        return pb.SetBaselineResponse(monitor=await self._monitor(request.monitor))

    async def LogPredictions(
        self, requests: AsyncIterator[pb.LogPredictionsRequest], ctx: grpc.aio.ServicerContext
    ) -> pb.LogPredictionsResponse:
        metadata = _writer("predictions")
        name = ""
        batches: list[bytes] = []
        rows, closed = 0, list[int]()
        async for request in requests:
            if request.monitor and name and request.monitor != name:
                raise InvalidArgument.field("monitor", "one LogPredictions stream carries one monitor's rows")
            name = name or request.monitor
            if not name:
                raise InvalidArgument.field("monitor", "name the monitor in the stream's first message")
            batches.append(request.arrow)
            if len(batches) >= 4:
                n, c = await self.service.log_predictions(name, batches, _indexed(metadata, rows))
                rows, closed, batches = rows + n, closed + c, []
        if not name:
            raise InvalidArgument.field("monitor", "the stream carried no rows")
        if batches:
            n, c = await self.service.log_predictions(name, batches, _indexed(metadata, rows))
            rows, closed = rows + n, closed + c
        return pb.LogPredictionsResponse(rows=rows, closed_windows=closed)

    async def LogLabels(
        self, request: pb.LogLabelsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.LogLabelsResponse:
        metadata = _writer("labels")
        rows, matched, windows = await self.service.log_labels(request.monitor, request.arrow, metadata)
        return pb.LogLabelsResponse(rows=rows, matched=matched, windows=windows)

    async def CloseWindow(
        self, request: pb.CloseWindowRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.CloseWindowResponse:
        metadata = _writer("close-window")
        window = await self.service.close_window(request.monitor, metadata)
        return pb.CloseWindowResponse(window=window_pb(await self._window_row(request.monitor, window)))

    async def ListWindows(
        self, request: pb.ListWindowsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ListWindowsResponse:
        await self._monitor(check_monitor_name(request.monitor, "monitor"))
        limit = request.limit or 100
        if not 0 < limit <= MAX_WINDOWS:
            raise InvalidArgument.field("limit", f"between 1 and {MAX_WINDOWS}")
        rows = await self.pool.fetch(
            f"SELECT * FROM {VIEWS.windows} WHERE monitor = $1 ORDER BY window_no DESC LIMIT $2",
            request.monitor,
            limit,
        )
        return pb.ListWindowsResponse(windows=[window_pb(r) for r in rows])

    async def GetWindow(
        self, request: pb.GetWindowRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetWindowResponse:
        return pb.GetWindowResponse(
            window=window_pb(await self._window_row(request.monitor, request.window), True)
        )

    async def ListAlerts(
        self, request: pb.ListAlertsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ListAlertsResponse:
        await self._monitor(check_monitor_name(request.monitor, "monitor"))
        rows = await self.pool.fetch(
            f"SELECT * FROM {VIEWS.alerts} WHERE monitor = $1 AND (NOT $2 OR status = 'open') "
            "ORDER BY raised_at, alert_id",
            request.monitor,
            request.open_only,
        )
        return pb.ListAlertsResponse(alerts=[alert_pb(r) for r in rows])

    async def ResolveAlert(
        self, request: pb.ResolveAlertRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ResolveAlertResponse:
        metadata = _writer("resolve-alert")
        name = check_monitor_name(request.monitor, "monitor")
        await self.service.state(name)
        cmd = ResolveAlert(alert_id=request.alert_id, by=metadata.actor, comment=request.comment)
        await self.service.execute(name, cmd, metadata)
        row = await self.pool.fetchrow(f"SELECT * FROM {VIEWS.alerts} WHERE alert_id = $1", request.alert_id)
        return pb.ResolveAlertResponse(alert=alert_pb(row))

    async def GetReport(
        self, request: pb.GetReportRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetReportResponse:
        row = await self._window_row(request.monitor, request.window)
        if row["drift"] is None:
            raise FailedPrecondition(
                f"window {row['window_no']} of monitor {request.monitor!r} is {row['status']}, "
                "not profiled yet"
            )
        result = drift.DriftResult.from_dict(json.loads(row["drift"]))
        performance: dict[str, Any] = json.loads(row["performance"]) or None  # type: ignore[assignment]
        monitor = await self._monitor(request.monitor)
        title = f"{monitor.name}: {monitor.model_ref} (v{monitor.model_version}), window {row['window_no']}"
        chips = {
            "model": f"{monitor.model}/{monitor.model_version}",
            "deployment": monitor.deployment or "-",
            "window": int(row["window_no"]),
            "rows": int(row["rows"]),
            "closed": row["closed_at"].strftime("%Y-%m-%d %H:%M:%S UTC") if row["closed_at"] else "-",
            "labelled rows": int(row["labelled_rows"]),
        }
        html = render_report(title, result, window=chips, performance=performance)
        return pb.GetReportResponse(html=html, window=row["window_no"])


def _indexed(metadata: Metadata, offset: int) -> Metadata:
    """One stream makes several appends: each gets its own idempotency key."""
    key = metadata.idempotency_key
    return metadata.model_copy(update={"idempotency_key": f"{key[:100]}@{offset}" if key else None})
