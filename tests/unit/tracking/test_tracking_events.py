"""Tracking events: NaN and infinities survive JSON, columns stay aligned, every event decodes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from eventlog import DomainEvent, canonical_json
from modelog_services.tracking.events import (
    DatasetInputLogged,
    ExperimentCreated,
    ExperimentDeleted,
    ExperimentNameClaimed,
    MetricPoint,
    MetricsLogged,
    RunFinished,
    RunSource,
    RunStarted,
    decode_metric_value,
    encode_metric_value,
    registry,
)


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@given(st.floats())
def test_every_float_survives_encode_then_decode(value: float) -> None:
    encoded = encode_metric_value(value)
    assert same_float(decode_metric_value(encoded), value)
    assert isinstance(encoded, float) or encoded in ("NaN", "Infinity", "-Infinity")


@settings(max_examples=50)
@given(st.lists(st.floats(), max_size=20))
def test_a_batch_with_any_floats_round_trips_through_canonical_json(values: list[float]) -> None:
    n = len(values)
    event = MetricsLogged(
        keys=("m",) * n, values=tuple(values), steps=tuple(range(n)), timestamps_ms=(7,) * n
    )
    text = event.payload_json()  # canonical_json refuses NaN: this would raise if one slipped through
    decoded = registry.decode("MetricsLogged", 1, json.loads(text))
    assert decoded == event
    assert isinstance(decoded, MetricsLogged)
    assert all(same_float(a, b) for a, b in zip(decoded.float_values(), values, strict=True))


def test_non_finite_values_are_spelled_as_protobuf_json_spells_them() -> None:
    event = MetricsLogged(
        keys=("a", "b", "c"), values=(math.nan, math.inf, -math.inf), steps=(0, 0, 0), timestamps_ms=(1, 1, 1)
    )
    assert json.loads(event.payload_json())["values"] == ["NaN", "Infinity", "-Infinity"]


def test_points_read_a_batch_row_by_row() -> None:
    points = [MetricPoint("loss", 0.5, 0, 10), MetricPoint("loss", math.inf, 1, 11)]
    assert list(MetricsLogged.of(points).points()) == points


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        (
            {"keys": ("a", "b"), "values": (1.0,), "steps": (0, 0), "timestamps_ms": (1, 1)},
            "columns differ in length",
        ),
        ({"keys": ("a",), "values": ("nan",), "steps": (0,), "timestamps_ms": (1,)}, "not a metric value"),
        ({"keys": ("a",), "values": (True,), "steps": (0,), "timestamps_ms": (1,)}, "not a boolean"),
    ],
)
def test_malformed_batches_do_not_validate(fields: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        MetricsLogged.model_validate(fields)


def test_decoding_an_unknown_string_value_is_an_error() -> None:
    with pytest.raises(ValueError, match="'inf' is not a metric value"):
        decode_metric_value("inf")


@pytest.mark.parametrize(
    "event",
    [
        ExperimentCreated(experiment_id="e1", name="churn", tags={"a": "b"}, created_at_ms=1),
        ExperimentDeleted(),
        ExperimentNameClaimed(name="churn", experiment_id="e1"),
        RunStarted(
            run_id="r1",
            experiment_id="e1",
            name="n",
            start_time_ms=1,
            source=RunSource(git_commit="abc", user="ana"),
        ),
        DatasetInputLogged(name="train", digest="sha256:0", context="training", dataset_schema='{"a":"int"}'),
        RunFinished(status="KILLED", end_time_ms=3),
    ],
)
def test_every_event_decodes_from_its_canonical_json(event: DomainEvent) -> None:
    payload = json.loads(event.payload_json())
    assert registry.decode(event.type, event.schema_version, payload) == event
    assert canonical_json(payload) == event.payload_json()


def test_a_run_cannot_finish_as_running() -> None:
    with pytest.raises(ValidationError):
        RunFinished(status="RUNNING", end_time_ms=1)  # type: ignore[arg-type]
