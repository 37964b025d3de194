"""The monitor as a decider: its configuration and baseline, its windows, and the rules that turn a
window's statistics into drift verdicts, alerts and retraining requests.

Statistics are computed by the service *before* deciding (drift tests on a million rows are not a
decision) and arrive on the command; the decider only says what they mean under the monitor's rules.
So the rules stay pure and replayable: "dataset drift in N consecutive windows raises an alert and
requests retraining", "f1 below 0.8 raises an alert", "one open alert per rule", "windows are sealed
and profiled in order", "an empty window cannot close".

Alert ids are derived from (monitor, rule, window): deterministic, so a replay decides the same ids.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NoReturn

from eventlog import AlreadyExists, Decider, DomainEvent, FailedPrecondition, InvalidArgument, NotFound

from .events import (
    AlertRaised,
    AlertResolved,
    BaselineSet,
    DriftDetected,
    LabelsLogged,
    MonitorConfig,
    MonitorConfigured,
    PerformanceDegraded,
    PredictionsLogged,
    RetrainRequested,
    WindowClosed,
    WindowCloseReason,
    WindowLabels,
    WindowProfiled,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def _invalid(name: str, why: str) -> NoReturn:
    raise InvalidArgument.field(name, why)


def check_monitor_name(value: str, field_name: str = "name") -> str:
    if not _NAME.match(value):
        _invalid(
            field_name, f"{value!r} is not a monitor name: 1-128 of A-Z a-z 0-9 . _ -, starting alphanumeric"
        )
    return value


def monitor_stream_id(name: str) -> str:
    return f"monitor-{name}"


def alert_id(monitor: str, rule: str, window: int) -> str:
    return hashlib.sha256(f"{monitor}\0{rule}\0{window}".encode()).hexdigest()[:16]


def check_config(config: MonitorConfig) -> None:
    """The configuration's own consistency (the columns' presence in data is checked on data)."""
    if not config.columns:
        _invalid("spec.columns", "name at least one feature column")
    names = [c.name for c in config.columns]
    for i, c in enumerate(config.columns):
        if not c.name:
            _invalid(f"spec.columns[{i}].name", "a column needs a name")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        _invalid("spec.columns", f"column {dup[0]!r} is listed twice")
    roles = {"prediction_column": config.prediction, "target_column": config.target}
    roles |= {"id_column": config.id_column, "timestamp_column": config.timestamp_column}
    for role, col in roles.items():
        if col and col in names:
            _invalid(f"spec.{role}", f"{col!r} is also a feature column; a column has one role")
    if (config.window_rows > 0) == (config.window_seconds > 0):
        _invalid("spec.window_rows", "give exactly one window policy: window_rows or window_seconds")
    if not 0 < config.drift_share <= 1:
        _invalid("spec.drift_share", f"{config.drift_share} is not in (0, 1]")
    if config.task and not config.prediction:
        _invalid("spec.prediction_column", f"a {config.task} monitor needs the prediction column")
    if config.metric_rules and not config.task:
        _invalid("spec.metric_rules", "metric rules need a task (classification or regression)")
    regression = {"mae", "rmse"}
    for i, rule in enumerate(config.metric_rules):
        if (rule.metric in regression) != (config.task == "regression"):
            _invalid(f"spec.metric_rules[{i}].metric", f"{rule.metric} is not a {config.task} metric")
    if config.metric_rules and not config.id_column and not config.target:
        _invalid("spec.id_column", "metric rules need labels: name the id column (or the target column)")


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Configure:
    name: str
    model: str
    model_ref: str
    model_version: int
    deployment: str
    config: MonitorConfig
    reference: str = ""
    reference_path: str = ""
    baseline: BaselineSet | None = None
    project: str = "default"


@dataclass(frozen=True)
class SetBaseline:
    baseline: BaselineSet


@dataclass(frozen=True)
class Part:
    window: int
    digest: str
    rows: int
    size: int


@dataclass(frozen=True)
class LogPredictions:
    """Batches already split at window boundaries by the service (see `split`) and stored as blobs."""

    parts: tuple[Part, ...]
    at: datetime


@dataclass(frozen=True)
class SealWindow:
    """Close the open window (manual close, or its time is up)."""

    window: int
    reason: WindowCloseReason
    at: datetime


@dataclass(frozen=True)
class RecordProfile:
    window: int
    rows: int
    profile: list[dict[str, object]]
    drift: dict[str, object]
    dataset_drift: bool
    drift_share: float
    drifted_columns: tuple[str, ...]
    performance: dict[str, float]
    at: datetime


@dataclass(frozen=True)
class RecordLabels:
    digest: str
    rows: int
    matched: int
    windows: tuple[WindowLabels, ...]


@dataclass(frozen=True)
class ResolveAlert:
    alert_id: str
    by: str
    comment: str = ""


MonitorCommand = (
    Configure | SetBaseline | LogPredictions | SealWindow | RecordProfile | RecordLabels | ResolveAlert
)


# ---------------------------------------------------------------- state


@dataclass(frozen=True)
class OpenAlert:
    alert_id: str
    kind: str
    rule: str
    window: int


@dataclass(frozen=True)
class MonitorState:
    name: str = ""
    model: str = ""
    model_ref: str = ""
    model_version: int = 0
    config: MonitorConfig | None = None
    baseline: BaselineSet | None = None
    open_window: int = 1
    open_rows: int = 0
    open_since: datetime | None = None
    closed: tuple[int, ...] = ()
    """Sealed windows waiting for their profile, oldest first."""
    profiled: int = 0
    drift_streak: int = 0
    alerts: dict[str, OpenAlert] = field(default_factory=dict)
    degraded: frozenset[tuple[int, str]] = frozenset()

    @property
    def exists(self) -> bool:
        return self.config is not None

    def rule_alert(self, rule: str) -> OpenAlert | None:
        return next((a for a in self.alerts.values() if a.rule == rule), None)

    def time_is_up(self, now: datetime) -> bool:
        """A time window with rows whose period has passed."""
        assert self.config is not None
        if not self.config.window_seconds or self.open_since is None or not self.open_rows:
            return False
        return now >= self.open_since + timedelta(seconds=self.config.window_seconds)


def split(state: MonitorState, rows: int) -> list[tuple[int, int, int]]:
    """(window, start, stop) slices of a batch of `rows`: row windows fill up and the rest spills into
    the next; a time window takes the whole batch."""
    assert state.config is not None
    size = state.config.window_rows
    if not size:
        return [(state.open_window, 0, rows)]
    out, start, window, room = [], 0, state.open_window, size - state.open_rows
    while start < rows:
        take = min(room, rows - start)
        out.append((window, start, start + take))
        start, window, room = start + take, window + 1, size
    return out


# ---------------------------------------------------------------- decide


def _require(state: MonitorState) -> MonitorConfig:
    if state.config is None:
        raise NotFound("no such monitor")
    return state.config


def _configure(cmd: Configure, state: MonitorState) -> list[DomainEvent]:
    if state.exists:
        raise AlreadyExists(f"monitor {state.name!r} already exists (watching {state.model_ref})")
    check_monitor_name(cmd.name)
    check_config(cmd.config)
    events: list[DomainEvent] = [
        MonitorConfigured(
            name=cmd.name,
            model=cmd.model,
            model_ref=cmd.model_ref,
            model_version=cmd.model_version,
            deployment=cmd.deployment,
            config=cmd.config,
            reference=cmd.reference,
            reference_path=cmd.reference_path,
            project=cmd.project,
        )
    ]
    if cmd.baseline is not None:
        events.append(cmd.baseline)
    return events


def _log(cmd: LogPredictions, state: MonitorState) -> list[DomainEvent]:
    config = _require(state)
    if state.baseline is None:
        raise FailedPrecondition(
            f"monitor {state.name!r} has no baseline yet: set one before logging predictions"
        )
    events: list[DomainEvent] = []
    window, rows = state.open_window, state.open_rows
    for part in cmd.parts:
        if part.rows <= 0:
            _invalid("arrow", "a batch of predictions needs at least one row")
        if part.window != window:
            raise FailedPrecondition(
                f"monitor {state.name!r}: a batch was cut for window {part.window} "
                f"but window {window} is open"
            )
        rows += part.rows
        if config.window_rows and rows > config.window_rows:
            raise FailedPrecondition(
                f"monitor {state.name!r}: the batch overfills window {window} "
                f"({rows} > {config.window_rows} rows)"
            )
        events.append(
            PredictionsLogged(window=window, digest=part.digest, rows=part.rows, size=part.size, at=cmd.at)
        )
        if config.window_rows and rows == config.window_rows:
            events.append(WindowClosed(window=window, rows=rows, reason="rows", at=cmd.at))
            window, rows = window + 1, 0
    return events


def _seal(cmd: SealWindow, state: MonitorState) -> list[DomainEvent]:
    _require(state)
    if cmd.window != state.open_window:
        raise FailedPrecondition(
            f"window {cmd.window} of monitor {state.name!r} is not open (window {state.open_window} is)"
        )
    if not state.open_rows:
        raise FailedPrecondition(
            f"window {cmd.window} of monitor {state.name!r} has no rows yet: there is nothing to profile"
        )
    return [WindowClosed(window=cmd.window, rows=state.open_rows, reason=cmd.reason, at=cmd.at)]


def _retrain(state: MonitorState, window: int, alert: str, reason: str) -> RetrainRequested:
    return RetrainRequested(
        monitor=state.name,
        model=state.model,
        model_ref=state.model_ref,
        model_version=state.model_version,
        window=window,
        alert_id=alert,
        reason=reason,
    )


def _metric_rules(
    state: MonitorState, window: int, performance: dict[str, float], raised: set[str]
) -> list[DomainEvent]:
    """PerformanceDegraded for each rule a window's metrics break (once per window and rule), an alert
    per rule unless one is open, and a retraining request when the rule asks for it."""
    assert state.config is not None
    events: list[DomainEvent] = []
    baseline = state.baseline.performance if state.baseline is not None else {}
    for rule in state.config.metric_rules:
        value = performance.get(rule.metric)
        if value is None:
            continue
        broken = value < rule.threshold if rule.op == "below" else value > rule.threshold
        if not broken or (window, rule.key) in state.degraded:
            continue
        events.append(
            PerformanceDegraded(
                window=window,
                metric=rule.metric,
                value=value,
                rule=rule.key,
                baseline=baseline.get(rule.metric),
            )
        )
        if state.rule_alert(rule.key) is not None or rule.key in raised:
            continue
        raised.add(rule.key)
        aid = alert_id(state.name, rule.key, window)
        message = f"{rule.metric} is {value:.4g} in window {window}, {rule.op} {rule.threshold:g}"
        events.append(
            AlertRaised(alert_id=aid, kind="performance", window=window, rule=rule.key, message=message)
        )
        if rule.retrain:
            events.append(_retrain(state, window, aid, message))
    return events


def _profile(cmd: RecordProfile, state: MonitorState) -> list[DomainEvent]:
    config = _require(state)
    if not state.closed or cmd.window != state.closed[0]:
        waiting = f"window {state.closed[0]} is next" if state.closed else "no window is waiting"
        raise FailedPrecondition(
            f"window {cmd.window} of monitor {state.name!r} is not waiting to be profiled ({waiting})"
        )
    events: list[DomainEvent] = [
        WindowProfiled(
            window=cmd.window,
            rows=cmd.rows,
            profile=cmd.profile,
            drift=cmd.drift,
            dataset_drift=cmd.dataset_drift,
            drift_share=cmd.drift_share,
            drifted_columns=cmd.drifted_columns,
            performance=cmd.performance,
            at=cmd.at,
        )
    ]
    streak = state.drift_streak + 1 if cmd.dataset_drift else 0
    if cmd.dataset_drift:
        events.append(
            DriftDetected(
                window=cmd.window,
                drift_share=cmd.drift_share,
                drifted_columns=cmd.drifted_columns,
                consecutive=streak,
            )
        )
        rule = f"dataset drift in {config.drift_windows} consecutive windows"
        if 0 < config.drift_windows <= streak and state.rule_alert(rule) is None:
            aid = alert_id(state.name, rule, cmd.window)
            columns = ", ".join(cmd.drifted_columns) or "none"
            message = (
                f"dataset drift in {streak} consecutive windows (window {cmd.window}: "
                f"{cmd.drift_share:.0%} of columns drifted: {columns})"
            )
            events.append(
                AlertRaised(alert_id=aid, kind="drift", window=cmd.window, rule=rule, message=message)
            )
            events.append(_retrain(state, cmd.window, aid, message))
    events.extend(_metric_rules(state, cmd.window, cmd.performance, set()))
    return events


def _labels(cmd: RecordLabels, state: MonitorState) -> list[DomainEvent]:
    _require(state)
    if cmd.rows <= 0:
        _invalid("arrow", "no labels in the request")
    events: list[DomainEvent] = [
        LabelsLogged(digest=cmd.digest, rows=cmd.rows, matched=cmd.matched, windows=cmd.windows)
    ]
    raised: set[str] = set()
    for w in cmd.windows:
        events.extend(_metric_rules(state, w.window, w.performance, raised))
    return events


def _resolve(cmd: ResolveAlert, state: MonitorState) -> list[DomainEvent]:
    _require(state)
    if cmd.alert_id not in state.alerts:
        raise NotFound(f"monitor {state.name!r} has no open alert {cmd.alert_id!r}")
    return [AlertResolved(alert_id=cmd.alert_id, by=cmd.by, comment=cmd.comment)]


def decide(cmd: MonitorCommand, state: MonitorState) -> Sequence[DomainEvent]:
    match cmd:
        case Configure():
            return _configure(cmd, state)
        case SetBaseline(baseline=baseline):
            _require(state)
            return [baseline]
        case LogPredictions():
            return _log(cmd, state)
        case SealWindow():
            return _seal(cmd, state)
        case RecordProfile():
            return _profile(cmd, state)
        case RecordLabels():
            return _labels(cmd, state)
        case ResolveAlert():
            return _resolve(cmd, state)
    raise TypeError(f"unknown command {cmd!r}")  # pragma: no cover


# ---------------------------------------------------------------- evolve


def evolve(state: MonitorState, e: DomainEvent) -> MonitorState:
    match e:
        case MonitorConfigured():
            return replace(
                state,
                name=e.name,
                model=e.model,
                model_ref=e.model_ref,
                model_version=e.model_version,
                config=e.config,
            )
        case BaselineSet():
            return replace(state, baseline=e)
        case PredictionsLogged():
            since = state.open_since if state.open_rows else e.at
            return replace(state, open_rows=state.open_rows + e.rows, open_since=since)
        case WindowClosed():
            return replace(
                state,
                open_window=e.window + 1,
                open_rows=0,
                open_since=None,
                closed=(*state.closed, e.window),
            )
        case WindowProfiled():
            return replace(
                state,
                closed=tuple(w for w in state.closed if w != e.window),
                profiled=e.window,
                drift_streak=state.drift_streak + 1 if e.dataset_drift else 0,
            )
        case PerformanceDegraded():
            return replace(state, degraded=state.degraded | {(e.window, e.rule)})
        case AlertRaised():
            return replace(
                state, alerts={**state.alerts, e.alert_id: OpenAlert(e.alert_id, e.kind, e.rule, e.window)}
            )
        case AlertResolved():
            return replace(state, alerts={k: v for k, v in state.alerts.items() if k != e.alert_id})
    return state


monitor_decider: Decider[MonitorCommand, MonitorState] = Decider(MonitorState(), decide, evolve)
