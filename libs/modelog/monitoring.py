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

`log_predictions` never blocks on the network: tables are queued and a background thread sends them
as Arrow IPC batches on a client stream. The queue is bounded (`max_queued_rows`): a producer faster
than the server waits there rather than growing memory without bound. Errors from the background are
raised by the next `log_predictions`, `flush` or `close_window`.
"""

from __future__ import annotations

import builtins
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
from google.protobuf.message import Message

from modelog._client import Connection
from modelog._gen.monitoring.v1 import monitoring_pb2 as pb
from modelog._gen.monitoring.v1 import monitoring_pb2_grpc
from modelog._time import when as _when
from modelog.errors import FailedPrecondition, InvalidArgument, ModelogError

BATCH_ROWS = 65_536
"""Rows per Arrow IPC message: big enough to amortise a Parquet blob and an event, small enough
(~12 MB for 22 columns) to stay well below the server's 64 MB message limit."""


def to_table(data: Any) -> pa.Table:
    """A pyarrow Table from a pandas DataFrame, an Arrow Table or RecordBatch, or a dict of columns."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas, without importing it
        return pa.Table.from_pandas(data, preserve_index=False)
    raise InvalidArgument(f"cannot log a {type(data).__name__}: give a pandas DataFrame or a pyarrow Table")


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


# ---------------------------------------------------------------- what the service returns


@dataclass
class Window:
    monitor: str
    window: int
    status: str
    rows: int
    labelled_rows: int
    dataset_drift: bool
    drift_share: float
    drifted_columns: list[str]
    performance: dict[str, float]
    opened_at: datetime | None
    closed_at: datetime | None
    profiled_at: datetime | None
    profile: list[dict[str, Any]] | None = None
    drift: dict[str, Any] | None = None

    @classmethod
    def of(cls, w: pb.Window) -> Window:
        import json

        return cls(
            monitor=w.monitor,
            window=w.window,
            status=w.status,
            rows=w.rows,
            labelled_rows=w.labelled_rows,
            dataset_drift=w.dataset_drift,
            drift_share=w.drift_share,
            drifted_columns=list(w.drifted_columns),
            performance=dict(w.performance),
            opened_at=_when(w.opened_at),
            closed_at=_when(w.closed_at),
            profiled_at=_when(w.profiled_at),
            profile=json.loads(w.profile_json) if w.profile_json else None,
            drift=json.loads(w.drift_json) if w.drift_json else None,
        )


@dataclass
class Alert:
    alert_id: str
    monitor: str
    kind: str
    window: int
    message: str
    status: str
    retrain_requested: bool
    raised_at: datetime | None
    resolved_by: str
    resolution: str
    resolved_at: datetime | None

    @classmethod
    def of(cls, a: pb.Alert) -> Alert:
        return cls(
            a.alert_id,
            a.monitor,
            a.kind,
            a.window,
            a.message,
            a.status,
            a.retrain_requested,
            _when(a.raised_at),
            a.resolved_by,
            a.resolution,
            _when(a.resolved_at),
        )


@dataclass
class Monitor:
    name: str
    model: str
    model_ref: str
    model_version: int
    deployment: str
    schema: dict[str, str]
    prediction: str
    target: str
    id_column: str
    task: str
    window_rows: int
    window_seconds: int
    baseline: dict[str, Any] | None
    open_window: int
    open_window_rows: int
    windows_closed: int
    open_alerts: int
    created_by: str
    created_at: datetime | None
    client: Monitors | None = field(default=None, repr=False, compare=False)
    _sender: _Sender | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, m: pb.Monitor, client: Monitors | None = None) -> Monitor:
        s, b = m.spec, m.baseline
        baseline = None
        if b.digest:
            baseline = {
                "reference": b.reference,
                "path": b.path,
                "digest": b.digest,
                "rows": b.rows,
                "performance": dict(b.performance),
            }
        return cls(
            name=m.name,
            model=m.model,
            model_ref=m.model_ref,
            model_version=m.model_version,
            deployment=m.deployment,
            schema={c.name: c.kind for c in s.columns},
            prediction=s.prediction_column,
            target=s.target_column,
            id_column=s.id_column,
            task=s.task,
            window_rows=s.window_rows,
            window_seconds=s.window_seconds,
            baseline=baseline,
            open_window=m.open_window,
            open_window_rows=m.open_window_rows,
            windows_closed=m.windows_closed,
            open_alerts=m.open_alerts,
            created_by=m.created_by,
            created_at=_when(m.created_at),
            client=client,
        )

    def _client(self) -> Monitors:
        if self.client is None:
            self.client = monitors
        return self.client

    def refresh(self) -> Monitor:
        fresh = self._client().get(self.name)
        for f in ("baseline", "open_window", "open_window_rows", "windows_closed", "open_alerts"):
            setattr(self, f, getattr(fresh, f))
        return self

    # -------------------------------------------------------------- writes

    def log_predictions(self, data: Any) -> None:
        """Queue rows (features, prediction, id[, target]) and return; see `flush`."""
        table = to_table(data)
        if table.num_rows == 0:
            return
        if self._sender is None:
            self._sender = _Sender(self._client(), self.name)
        self._sender.put(table)

    def flush(self, timeout: float | None = 120.0) -> None:
        """Wait until every queued row is stored; raises what the server refused."""
        if self._sender is not None:
            self._sender.flush(timeout)

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None

    def set_baseline(self, reference: str = "", path: str = "", data: Any = None) -> Monitor:
        arrow = to_ipc(to_table(data)) if data is not None else b""
        req = pb.SetBaselineRequest(monitor=self.name, reference=reference, path=path, arrow=arrow)
        return self._update(self._client().call("SetBaseline", req).monitor)

    def log_labels(
        self, ids: Sequence[Any] | Any, labels: Sequence[Any] | Any, scores: Sequence[float] | Any = None
    ) -> dict[str, Any]:
        """Ground truth for ids logged earlier (their windows must be closed); returns what matched."""
        self.flush()
        columns: dict[str, Any] = {"id": pa.array(ids), "label": pa.array(labels)}
        if scores is not None:
            columns["score"] = pa.array(scores, pa.float64())
        resp = self._client().call(
            "LogLabels", pb.LogLabelsRequest(monitor=self.name, arrow=to_ipc(pa.table(columns)))
        )
        return {"rows": resp.rows, "matched": resp.matched, "windows": list(resp.windows)}

    def close_window(self) -> Window:
        """Close the open window now (after sending what is queued); it is profiled in the background."""
        self.flush()
        return Window.of(self._client().call("CloseWindow", pb.CloseWindowRequest(monitor=self.name)).window)

    def resolve_alert(self, alert_id: str, comment: str = "") -> Alert:
        req = pb.ResolveAlertRequest(monitor=self.name, alert_id=alert_id, comment=comment)
        return Alert.of(self._client().call("ResolveAlert", req).alert)

    # -------------------------------------------------------------- reads

    def windows(self, limit: int = 100) -> list[Window]:
        """Newest first."""
        resp = self._client().call("ListWindows", pb.ListWindowsRequest(monitor=self.name, limit=limit))
        return [Window.of(w) for w in resp.windows]

    def window(self, window: int = 0) -> Window:
        """One window with its profile and drift result (0: the newest profiled one)."""
        resp = self._client().call("GetWindow", pb.GetWindowRequest(monitor=self.name, window=window))
        return Window.of(resp.window)

    def wait_profiled(self, window: int, timeout: float = 60.0) -> Window:
        """Poll until `window` is profiled (closing returns before the drift tests finish)."""
        deadline = time.monotonic() + timeout
        while True:
            w = self.window(window)
            if w.status == "profiled":
                return w
            if time.monotonic() > deadline:
                raise TimeoutError(f"window {window} of {self.name} is still {w.status} after {timeout}s")
            time.sleep(0.05)

    def alerts(self, open_only: bool = False) -> list[Alert]:
        resp = self._client().call("ListAlerts", pb.ListAlertsRequest(monitor=self.name, open_only=open_only))
        return [Alert.of(a) for a in resp.alerts]

    def report(self, window: int | None = None) -> str:
        """The HTML report of a window (the newest profiled one by default)."""
        resp = self._client().call("GetReport", pb.GetReportRequest(monitor=self.name, window=window or 0))
        return str(resp.html)

    def _update(self, m: pb.Monitor) -> Monitor:
        fresh = Monitor.of(m, self.client)
        for f in ("baseline", "open_window", "open_window_rows", "windows_closed", "open_alerts"):
            setattr(self, f, getattr(fresh, f))
        return self


class _Sender:
    """The background thread of one monitor: coalesces queued tables into BATCH_ROWS-row Arrow IPC
    messages and sends them on a LogPredictions stream that stays open while rows keep coming."""

    def __init__(self, client: Monitors, name: str, max_queued_rows: int = 2_000_000) -> None:
        self.client, self.name = client, name
        self.queue: queue.Queue[pa.Table | None] = queue.Queue()
        self.room = threading.BoundedSemaphore(max(1, max_queued_rows // BATCH_ROWS))
        self.pending = 0
        self.cond = threading.Condition()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"modelog-monitor-{name}", daemon=True)
        self.thread.start()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def put(self, table: pa.Table) -> None:
        self._raise()
        for offset in range(0, table.num_rows, BATCH_ROWS):
            self.room.acquire()
            with self.cond:
                self.pending += 1
            self.queue.put(table.slice(offset, BATCH_ROWS))

    def flush(self, timeout: float | None) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.pending == 0, timeout):
                raise TimeoutError(f"predictions for {self.name} were not all sent within {timeout}s")
        self._raise()

    def close(self) -> None:
        self.flush(None)
        self.queue.put(None)
        self.thread.join()

    def _done(self, n: int) -> None:
        with self.cond:
            self.pending -= n
            self.cond.notify_all()
        for _ in range(n):
            self.room.release()

    def _requests(self, first: pa.Table, sent: list[int]) -> Iterator[pb.LogPredictionsRequest]:
        item: pa.Table | None = first
        while item is not None:
            yield pb.LogPredictionsRequest(monitor=self.name, arrow=to_ipc(item))
            sent[0] += 1
            try:
                item = self.queue.get(timeout=0.05)
            except queue.Empty:
                return
            if item is None:
                self.queue.put(None)
                return

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            sent = [0]
            try:
                self.client.stub.LogPredictions(self._requests(first, sent), timeout=600)
            except Exception as exc:  # noqa: BLE001 - kept for the caller: a dead thread would hang flush()
                self.error = exc
            self._done(max(sent[0], 1))


# ---------------------------------------------------------------- the client


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
