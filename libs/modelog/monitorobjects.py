"""What the Monitoring SDK returns: monitors (which log predictions and labels and read their
windows, alerts and reports), windows and alerts. A monitor acts through the client it came from, else
through the default connection's (`modelog.connect()`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from modelog._gen.monitoring.v1 import monitoring_pb2 as pb
from modelog._monitorsender import Sender, to_ipc, to_table
from modelog._time import when as _when

if TYPE_CHECKING:
    from modelog.monitoring import Monitors


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
    _sender: Sender | None = field(default=None, repr=False, compare=False)

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
            from modelog.monitoring import monitors  # late: modelog.monitoring imports this module

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
            self._sender = Sender(self._client(), self.name)
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
