"""The monitor's rules, given / when / then, on the pure decider (statistics arrive on the commands)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from eventlog import AlreadyExists, DomainEvent, FailedPrecondition, InvalidArgument, NotFound
from modelog_services.monitoring import domain as d
from modelog_services.monitoring.domain import monitor_decider
from modelog_services.monitoring.events import (
    AlertRaised,
    AlertResolved,
    BaselineSet,
    ColumnConfig,
    DriftDetected,
    LabelsLogged,
    MetricRule,
    MonitorConfig,
    MonitorConfigured,
    PerformanceDegraded,
    PredictionsLogged,
    RetrainRequested,
    WindowClosed,
    WindowLabels,
    WindowProfiled,
)
from tests import gwt

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONFIG = MonitorConfig(
    columns=(ColumnConfig(name="age", kind="numerical"), ColumnConfig(name="plan", kind="categorical")),
    prediction="churn",
    id_column="id",
    task="classification",
    window_rows=100,
    metric_rules=(MetricRule(metric="f1", op="below", threshold=0.8, retrain=True),),
)
BASELINE = BaselineSet(
    reference="ds:v3", artifact="ds:v3", path="ref.parquet", digest="ab" * 32, rows=1000, profile=[]
)


def configured(config: MonitorConfig = CONFIG, baseline: bool = True) -> list[DomainEvent]:
    events: list[DomainEvent] = [
        MonitorConfigured(
            name="churn-prod",
            model="churn",
            model_ref="churn@champion",
            model_version=3,
            deployment="eu",
            config=config,
            reference="ds:v3",
            reference_path="ref.parquet",
        )
    ]
    return [*events, BASELINE] if baseline else events


def fold(events: Sequence[DomainEvent]) -> d.MonitorState:
    return monitor_decider.fold(list(events))


def decide(given: Sequence[DomainEvent], when: d.MonitorCommand) -> list[DomainEvent]:
    return gwt.when(monitor_decider, list(given), when)


def logged(window: int, rows: int) -> PredictionsLogged:
    return PredictionsLogged(window=window, digest="cd" * 32, rows=rows, size=10, at=T0)


def profile_cmd(window: int, drift: bool, performance: dict[str, float] | None = None) -> d.RecordProfile:
    return d.RecordProfile(
        window=window,
        rows=100,
        profile=[],
        drift={"dataset_drift": drift},
        dataset_drift=drift,
        drift_share=0.5 if drift else 0.0,
        drifted_columns=("age",) if drift else (),
        performance=performance or {},
        at=T0,
    )


def profiled(window: int, drift: bool) -> list[DomainEvent]:
    """A full window, closed and profiled."""
    events: list[DomainEvent] = [
        logged(window, 100),
        WindowClosed(window=window, rows=100, reason="rows", at=T0),
    ]
    state = fold([*configured(), *events])
    return [*events, *monitor_decider.decide(profile_cmd(window, drift), state)]


def history(*drifts: bool) -> list[DomainEvent]:
    events = configured()
    for i, drift in enumerate(drifts, start=1):
        state = fold(events)
        events += [logged(i, 100), WindowClosed(window=i, rows=100, reason="rows", at=T0)]
        events += monitor_decider.decide(profile_cmd(i, drift), fold(events))
        assert state.open_window == i
    return events


def test_a_monitor_is_configured_with_its_baseline_in_one_decision() -> None:
    cmd = d.Configure(
        "churn-prod", "churn", "churn@champion", 3, "eu", CONFIG, "ds:v3", "ref.parquet", BASELINE
    )
    assert decide([], cmd) == configured()


def test_a_monitor_name_is_taken_once() -> None:
    cmd = d.Configure("churn-prod", "churn", "churn@champion", 3, "eu", CONFIG)
    with pytest.raises(AlreadyExists, match="churn-prod"):
        decide(configured(), cmd)


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"columns": ()}, "spec.columns"),
        ({"window_rows": 0}, "spec.window_rows"),
        ({"window_seconds": 60}, "spec.window_rows"),
        ({"prediction": "age"}, "spec.prediction_column"),
        ({"drift_share": 1.5}, "spec.drift_share"),
        ({"task": "regression"}, "spec.metric_rules[0].metric"),
    ],
)
def test_an_inconsistent_configuration_is_refused_naming_the_field(
    update: dict[str, object], field: str
) -> None:
    config = CONFIG.model_copy(update=update)
    with pytest.raises(InvalidArgument) as info:
        decide([], d.Configure("churn-prod", "churn", "churn@champion", 3, "eu", config))
    assert info.value.violations[0].field == field


def test_predictions_need_a_baseline() -> None:
    with pytest.raises(FailedPrecondition, match="no baseline"):
        decide(configured(baseline=False), d.LogPredictions((d.Part(1, "cd" * 32, 10, 1),), T0))


def test_a_batch_spanning_two_windows_is_split_and_the_full_window_closes() -> None:
    given = [*configured(), logged(1, 70)]
    assert d.split(fold(given), 50) == [(1, 0, 30), (2, 30, 50)]
    when = d.LogPredictions((d.Part(1, "a" * 64, 30, 1), d.Part(2, "b" * 64, 20, 1)), T0)
    events = decide(given, when)
    assert [type(e) for e in events] == [PredictionsLogged, WindowClosed, PredictionsLogged]
    assert events[1] == WindowClosed(window=1, rows=100, reason="rows", at=T0)
    state = fold([*given, *events])
    assert (state.open_window, state.open_rows, state.closed) == (2, 20, (1,))


def test_a_part_cut_for_a_stale_window_or_overfilling_it_is_refused() -> None:
    given = [*configured(), logged(1, 70)]
    with pytest.raises(FailedPrecondition, match="overfills window 1"):
        decide(given, d.LogPredictions((d.Part(1, "a" * 64, 31, 1),), T0))
    with pytest.raises(FailedPrecondition, match="window 1 is open"):
        decide(given, d.LogPredictions((d.Part(2, "a" * 64, 10, 1),), T0))


def test_an_empty_window_cannot_be_closed() -> None:
    with pytest.raises(FailedPrecondition, match="no rows"):
        decide(configured(), d.SealWindow(1, "manual", T0))
    assert decide([*configured(), logged(1, 5)], d.SealWindow(1, "manual", T0)) == [
        WindowClosed(window=1, rows=5, reason="manual", at=T0)
    ]


def test_a_time_window_is_up_after_its_period_from_its_first_row() -> None:
    config = CONFIG.model_copy(update={"window_rows": 0, "window_seconds": 60})
    state = fold([*configured(config), logged(1, 5)])
    assert not state.time_is_up(T0 + timedelta(seconds=59))
    assert state.time_is_up(T0 + timedelta(seconds=60))
    assert d.split(state, 10_000) == [(1, 0, 10_000)]


def test_windows_are_profiled_in_order() -> None:
    given = [*configured(), logged(1, 100), WindowClosed(window=1, rows=100, reason="rows", at=T0)]
    given += [logged(2, 100), WindowClosed(window=2, rows=100, reason="rows", at=T0)]
    with pytest.raises(FailedPrecondition, match="window 1 is next"):
        decide(given, profile_cmd(2, False))


def test_no_drift_records_the_profile_only() -> None:
    events = history(False)
    assert [type(e) for e in events[-1:]] == [WindowProfiled]
    assert fold(events).drift_streak == 0


def test_drift_in_two_consecutive_windows_raises_one_alert_and_requests_retraining() -> None:
    given = history(True)
    assert isinstance(given[-1], DriftDetected) and given[-1].consecutive == 1
    events = decide(
        [*given, logged(2, 100), WindowClosed(window=2, rows=100, reason="rows", at=T0)], profile_cmd(2, True)
    )
    assert [type(e) for e in events] == [WindowProfiled, DriftDetected, AlertRaised, RetrainRequested]
    alert, retrain = events[2], events[3]
    assert isinstance(alert, AlertRaised) and isinstance(retrain, RetrainRequested)
    assert alert.kind == "drift" and alert.alert_id == d.alert_id("churn-prod", alert.rule, 2)
    assert (retrain.model, retrain.model_version, retrain.alert_id) == ("churn", 3, alert.alert_id)
    # A third drifting window is a fact, not a second alert, while the first is open.
    third = history(True, True, True)
    assert [type(e) for e in third].count(AlertRaised) == 1


def test_drift_interrupted_by_a_clean_window_starts_counting_again() -> None:
    events = history(True, False, True)
    assert AlertRaised not in [type(e) for e in events]


def test_a_resolved_alert_lets_the_rule_fire_again() -> None:
    given = history(True, True)
    alert = next(e for e in given if isinstance(e, AlertRaised))
    resolved = decide(given, d.ResolveAlert(alert.alert_id, "bob", "retrained"))
    assert resolved == [AlertResolved(alert_id=alert.alert_id, by="bob", comment="retrained")]
    with pytest.raises(NotFound):
        decide([*given, *resolved], d.ResolveAlert(alert.alert_id, "bob"))
    given = [*given, *resolved, logged(3, 100), WindowClosed(window=3, rows=100, reason="rows", at=T0)]
    assert AlertRaised in [type(e) for e in decide(given, profile_cmd(3, True))]


def test_the_drift_rule_can_be_disabled() -> None:
    config = CONFIG.model_copy(update={"drift_windows": -1})
    events = configured(config)
    for i in (1, 2, 3):
        events += [logged(i, 100), WindowClosed(window=i, rows=100, reason="rows", at=T0)]
        events += monitor_decider.decide(profile_cmd(i, True), fold(events))
    assert AlertRaised not in [type(e) for e in events]


def test_late_labels_breaking_a_metric_rule_degrade_performance_alert_and_request_retraining() -> None:
    given = history(False)
    when = d.RecordLabels(
        "ef" * 32, 80, 80, (WindowLabels(window=1, labelled_rows=80, performance={"f1": 0.6}),)
    )
    events = decide(given, when)
    assert [type(e) for e in events] == [LabelsLogged, PerformanceDegraded, AlertRaised, RetrainRequested]
    degraded = events[1]
    assert isinstance(degraded, PerformanceDegraded) and (degraded.metric, degraded.value) == ("f1", 0.6)
    # More labels for the same window: the window's metric is updated, nothing is raised twice.
    again = decide([*given, *events], when)
    assert [type(e) for e in again] == [LabelsLogged]


def test_labels_within_the_rule_only_update_the_window() -> None:
    when = d.RecordLabels(
        "ef" * 32, 80, 80, (WindowLabels(window=1, labelled_rows=80, performance={"f1": 0.9}),)
    )
    assert [type(e) for e in decide(history(False), when)] == [LabelsLogged]
