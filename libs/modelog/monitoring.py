"""Production monitoring from Python: watch a registered model for data drift and performance decay.

    import modelog
    monitor = modelog.monitors.create(
        "churn-prod", model="churn@champion", reference="customers:v3", reference_path="ref.parquet",
        schema={"age": "numerical", "plan": "categorical"}, prediction="churn", id_column="customer_id",
        task="classification", window_rows=10_000,
    )
    monitor.log_predictions(df)          # pandas or Arrow; returns at once, sent in the background
    monitor.flush()
    monitor.log_labels(ids, labels)      # late ground truth, joined on the id column
    monitor.windows(); monitor.alerts(); open("report.html", "w").write(monitor.report())

`log_predictions` never blocks on the network: rows are sent by a background thread over a bounded
queue (`_monitorsender`); its errors are raised by the next `log_predictions`, `flush` or
`close_window`. The objects returned are in `monitorobjects`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf.message import Message

from modelog._client import Connection
from modelog._gen.monitoring.v1 import monitoring_pb2 as pb
from modelog._gen.monitoring.v1 import monitoring_pb2_grpc
from modelog._monitorsender import to_ipc, to_table
from modelog.errors import FailedPrecondition, InvalidArgument, ModelogError
from modelog.monitorobjects import Alert, Monitor, Window


def _spec(
    schema: Mapping[str, str] | Sequence[tuple[str, str]],
    *,
    prediction: str,
    target: str,
    id_column: str,
    timestamp_column: str,
    task: str,
    window_rows: int,
    window_seconds: int,
    drift_share: float,
    stattest: str,
    drift_windows: int,
    metric_rules: Sequence[Mapping[str, Any] | str],
) -> pb.MonitorSpec:
    items = schema.items() if isinstance(schema, Mapping) else schema
    rules = []
    for rule in metric_rules:
        if isinstance(rule, str):  # "f1 below 0.8"
            parts = rule.split()
            if len(parts) != 3:
                raise InvalidArgument(f"metric rule {rule!r} is not '<metric> below|above <threshold>'")
            rules.append(pb.MetricRule(metric=parts[0], op=parts[1], threshold=float(parts[2]), retrain=True))
        else:
            rules.append(pb.MetricRule(**{"retrain": True, **rule}))
    return pb.MonitorSpec(
        columns=[pb.Column(name=n, kind=k) for n, k in items],
        prediction_column=prediction,
        target_column=target,
        id_column=id_column,
        timestamp_column=timestamp_column,
        task=task,
        window_rows=window_rows,
        window_seconds=window_seconds,
        drift_share=drift_share,
        stattest=stattest,
        drift_windows=drift_windows,
        metric_rules=rules,
    )


class Monitors:
    """`monitors`: the Monitoring API through the connection `modelog.connect()` made (or a given one)."""

    def __init__(self, conn: Connection | None = None) -> None:
        self._conn = conn
        self._stub: monitoring_pb2_grpc.MonitoringStub | None = None

    @property
    def stub(self) -> monitoring_pb2_grpc.MonitoringStub:
        if self._conn is None:
            from modelog._session import default

            conn = default()._online().conn
            return monitoring_pb2_grpc.MonitoringStub(conn.channel)
        if self._stub is None:
            self._stub = monitoring_pb2_grpc.MonitoringStub(self._conn.channel)
        return self._stub

    def call(self, rpc: str, request: Message) -> Any:
        method: Callable[..., Any] = getattr(self.stub, rpc)
        return method(request, timeout=120)  # raises modelog.errors (modelog._client)

    def create(
        self,
        name: str,
        *,
        model: str,
        schema: Mapping[str, str] | Sequence[tuple[str, str]],
        prediction: str = "",
        target: str = "",
        id_column: str = "",
        timestamp_column: str = "",
        task: str = "",
        window_rows: int = 0,
        window_seconds: int = 0,
        reference: str = "",
        reference_path: str = "",
        reference_data: Any = None,
        deployment: str = "",
        drift_share: float = 0.5,
        stattest: str = "",
        drift_windows: int = 2,
        metric_rules: Sequence[Mapping[str, Any] | str] = (),
    ) -> Monitor:
        """A monitor of `model` ("churn@champion", "churn/3"). `schema` maps feature columns to
        numerical, categorical or text. The baseline comes from `reference` (an artifact version such
        as "customers:v3") and `reference_path` (a Parquet or CSV file in it), or `reference_data`.
        Metric rules read "f1 below 0.8" (and request retraining when they fire)."""
        if not window_rows and not window_seconds:
            raise InvalidArgument("give a window policy: window_rows=N or window_seconds=S")
        spec = _spec(
            schema,
            prediction=prediction,
            target=target,
            id_column=id_column,
            timestamp_column=timestamp_column,
            task=task,
            window_rows=window_rows,
            window_seconds=window_seconds,
            drift_share=drift_share,
            stattest=stattest,
            drift_windows=drift_windows,
            metric_rules=metric_rules,
        )
        req = pb.CreateMonitorRequest(
            name=name,
            model=model,
            deployment=deployment,
            spec=spec,
            reference=reference,
            reference_path=reference_path,
            reference_arrow=to_ipc(to_table(reference_data)) if reference_data is not None else b"",
        )
        return Monitor.of(self.call("CreateMonitor", req).monitor, self)

    def get(self, name: str) -> Monitor:
        return Monitor.of(self.call("GetMonitor", pb.GetMonitorRequest(name=name)).monitor, self)

    def list(self, model: str = "") -> builtins.list[Monitor]:
        return [
            Monitor.of(m, self)
            for m in self.call("ListMonitors", pb.ListMonitorsRequest(model=model)).monitors
        ]


monitors = Monitors()

__all__ = [
    "Alert",
    "FailedPrecondition",
    "ModelogError",
    "Monitor",
    "Monitors",
    "Window",
    "monitors",
]
