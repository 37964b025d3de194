"""The monitoring service's domain events: monitors, their baselines, windows of production rows,
drift and performance verdicts, alerts and retraining requests.

Streams: `monitor-<name>` holds everything about one monitor. The rules that matter ("dataset drift in
2 consecutive windows", "one open alert per rule", "windows are profiled in order") span windows, so
the monitor is the consistency boundary.

Rows never travel in events: a batch of predictions is a Parquet blob in the artifacts service and
`PredictionsLogged` carries its digest; a window's verdict carries statistics only (profiles, test
statistics, histograms of a few dozen bins).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from eventlog import DomainEvent, EventRegistry

registry = EventRegistry()

WindowCloseReason = Literal["rows", "time", "manual"]
AlertKind = Literal["drift", "performance"]
MetricOp = Literal["below", "above"]
JsonDict = dict[str, Any]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnConfig(_Value):
    name: str
    kind: Literal["numerical", "categorical", "text"]
    stattest: str = ""
    threshold: float | None = None


class MetricRule(_Value):
    metric: Literal["accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse"]
    op: MetricOp
    threshold: float
    retrain: bool = False

    @property
    def key(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


class MonitorConfig(_Value):
    """What a monitor watches and how: reviewable like any configuration, so it is an event."""

    columns: tuple[ColumnConfig, ...]
    prediction: str = ""
    target: str = ""
    id_column: str = ""
    timestamp_column: str = ""
    task: Literal["classification", "regression"] | None = None
    window_rows: int = Field(default=0, ge=0)
    window_seconds: int = Field(default=0, ge=0)
    drift_share: float = 0.5
    stattest: str = ""
    threshold: float | None = None
    drift_windows: int = 2
    """Dataset drift in this many consecutive windows raises an alert and requests retraining; <= 0
    disables the rule."""
    metric_rules: tuple[MetricRule, ...] = ()


class WindowLabels(_Value):
    """A window's performance after labels joined it."""

    window: int
    labelled_rows: int
    performance: dict[str, float]


# ---------------------------------------------------------------- events


@registry.register
class MonitorConfigured(DomainEvent):
    name: str
    model: str
    """The registered model's name (the lineage graph links monitors to models by it)."""
    model_ref: str
    """The reference as given: "churn@champion", "churn/3"."""
    model_version: int
    """The version the reference resolved to when the monitor was created."""
    deployment: str
    config: MonitorConfig
    project: str = "default"
    """Events from before projects have none: they are in "default"."""
    reference: str = ""
    """The artifact version the first baseline came from ("ds:v3"), or "" (rows uploaded, or none)."""
    reference_path: str = ""


@registry.register
class BaselineSet(DomainEvent):
    reference: str
    """Artifact ref as given, or "" for uploaded rows."""
    artifact: str
    """The artifact version it resolved to ("ds:v3"), or ""."""
    path: str
    digest: str
    """The reference table as a Parquet blob (only the monitored columns)."""
    rows: int
    profile: list[JsonDict]
    performance: dict[str, float] = {}
    """Metrics of the reference when it holds both the target and the prediction."""


@registry.register
class PredictionsLogged(DomainEvent):
    window: int
    digest: str
    rows: int
    size: int
    at: datetime


@registry.register
class WindowClosed(DomainEvent):
    window: int
    rows: int
    reason: WindowCloseReason
    at: datetime


@registry.register
class WindowProfiled(DomainEvent):
    window: int
    rows: int
    profile: list[JsonDict]
    drift: JsonDict
    """The DriftResult's dict (statistics and histograms, never rows)."""
    dataset_drift: bool
    drift_share: float
    drifted_columns: tuple[str, ...]
    performance: dict[str, float] = {}
    at: datetime


@registry.register
class DriftDetected(DomainEvent):
    window: int
    drift_share: float
    drifted_columns: tuple[str, ...]
    consecutive: int
    """Windows in a row with dataset drift, this one included."""


@registry.register
class LabelsLogged(DomainEvent):
    digest: str
    """The labels as a Parquet blob (id, label[, score])."""
    rows: int
    matched: int
    windows: tuple[WindowLabels, ...]


@registry.register
class PerformanceDegraded(DomainEvent):
    window: int
    metric: str
    value: float
    rule: str
    baseline: float | None = None


@registry.register
class AlertRaised(DomainEvent):
    alert_id: str
    kind: AlertKind
    window: int
    rule: str
    message: str


@registry.register
class RetrainRequested(DomainEvent):
    """What CI/CD subscribes to: retrain `model` because `reason`."""

    monitor: str
    model: str
    model_ref: str
    model_version: int
    window: int
    alert_id: str
    reason: str


@registry.register
class AlertResolved(DomainEvent):
    alert_id: str
    by: str
    comment: str = ""
