"""Tracking's domain events: experiments, runs, and the experiment-name claims that keep names unique.

Streams: `experiment-<id>`, `run-<id>`, and one claim stream per experiment name (see domain.py). Ids of
the aggregate live in the stream id; only the creating event repeats them, so a consumer that sees the
first event of a stream knows everything about it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eventlog import DomainEvent, EventRegistry

registry = EventRegistry()

RunStatus = Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]
TerminalStatus = Literal["FINISHED", "FAILED", "KILLED"]
TERMINAL_STATUSES: tuple[TerminalStatus, ...] = ("FINISHED", "FAILED", "KILLED")
RUN_STATUSES: tuple[RunStatus, ...] = ("RUNNING", *TERMINAL_STATUSES)

# ---------------------------------------------------------------- metric values
# JSON has no NaN or infinities (and canonical_json refuses them), yet a diverging loss is a fact worth
# keeping. Non-finite values travel as the strings protobuf's JSON mapping uses.

NAN, POS_INF, NEG_INF = "NaN", "Infinity", "-Infinity"
_DECODE: dict[str, float] = {NAN: math.nan, POS_INF: math.inf, NEG_INF: -math.inf}
EncodedValue = float | str


def encode_metric_value(value: float) -> EncodedValue:
    """A float as it is stored in an event payload: itself when finite, else "NaN"/"Infinity"/"-Infinity"."""
    if math.isfinite(value):
        return float(value)
    if math.isnan(value):
        return NAN
    return POS_INF if value > 0 else NEG_INF


def decode_metric_value(value: EncodedValue) -> float:
    """Inverse of encode_metric_value."""
    if isinstance(value, str):
        try:
            return _DECODE[value]
        except KeyError:
            raise ValueError(
                f"{value!r} is not a metric value; expected a number, {NAN}, {POS_INF} or {NEG_INF}"
            ) from None
    return value


def _normalize_value(value: Any) -> EncodedValue:
    if isinstance(value, bool):
        raise ValueError("a metric value is a number, not a boolean")
    if isinstance(value, int | float):
        return encode_metric_value(float(value))
    if isinstance(value, str) and value in _DECODE:
        return value
    raise ValueError(f"{value!r} is not a metric value; expected a number, {NAN}, {POS_INF} or {NEG_INF}")


class MetricPoint(NamedTuple):
    key: str
    value: float
    step: int
    timestamp_ms: int


# ---------------------------------------------------------------- experiments


@registry.register
class ExperimentCreated(DomainEvent):
    experiment_id: str
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    created_at_ms: int
    project: str = "default"
    """Events from before projects have none: they are in "default"."""


@registry.register
class ExperimentRenamed(DomainEvent):
    name: str
    previous_name: str


@registry.register
class ExperimentDescribed(DomainEvent):
    description: str


@registry.register
class ExperimentTagsSet(DomainEvent):
    tags: dict[str, str]


@registry.register
class ExperimentTagDeleted(DomainEvent):
    key: str


@registry.register
class ExperimentDeleted(DomainEvent):
    pass


@registry.register
class ExperimentRestored(DomainEvent):
    pass


@registry.register
class ExperimentNameClaimed(DomainEvent):
    name: str
    experiment_id: str


@registry.register
class ExperimentNameReleased(DomainEvent):
    name: str
    experiment_id: str


# ---------------------------------------------------------------- runs


class RunSource(BaseModel):
    """Where a run came from, as the SDK saw it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    git_commit: str | None = None
    entry_point: str | None = None
    host: str | None = None
    user: str | None = None


@registry.register
class RunStarted(DomainEvent):
    run_id: str
    experiment_id: str
    name: str
    start_time_ms: int
    parent_run_id: str | None = None
    source: RunSource = RunSource()
    tags: dict[str, str] = Field(default_factory=dict)


@registry.register
class RunRenamed(DomainEvent):
    name: str
    previous_name: str


@registry.register
class ParamsLogged(DomainEvent):
    params: dict[str, str]


@registry.register
class MetricsLogged(DomainEvent):
    """A columnar batch of points: entry i is (keys[i], values[i], steps[i], timestamps_ms[i]).

    `values` holds encoded values (see encode_metric_value); floats given here are encoded on the way in,
    so `MetricsLogged(values=[float("nan")], ...)` is valid and equals one built with "NaN".
    """

    keys: tuple[str, ...]
    values: tuple[EncodedValue, ...]
    steps: tuple[int, ...]
    timestamps_ms: tuple[int, ...]

    @field_validator("values", mode="before")
    @classmethod
    def _encode(cls, values: Any) -> Any:
        if isinstance(values, list | tuple):
            finite = math.isfinite
            return tuple(v if type(v) is float and finite(v) else _normalize_value(v) for v in values)
        return values

    @model_validator(mode="after")
    def _columns_align(self) -> MetricsLogged:
        n = len(self.keys)
        if not len(self.values) == len(self.steps) == len(self.timestamps_ms) == n:
            raise ValueError(
                f"columns differ in length: {n} keys, {len(self.values)} values, "
                f"{len(self.steps)} steps, {len(self.timestamps_ms)} timestamps"
            )
        return self

    @classmethod
    def of(cls, points: Sequence[MetricPoint]) -> MetricsLogged:
        return cls(
            keys=tuple(p.key for p in points),
            values=tuple(p.value for p in points),
            steps=tuple(p.step for p in points),
            timestamps_ms=tuple(p.timestamp_ms for p in points),
        )

    def float_values(self) -> list[float]:
        """The values decoded: NaN and infinities as floats again."""
        return [_DECODE[v] if isinstance(v, str) else v for v in self.values]

    def points(self) -> Iterator[MetricPoint]:
        return map(MetricPoint, self.keys, self.float_values(), self.steps, self.timestamps_ms)


@registry.register
class TagsSet(DomainEvent):
    tags: dict[str, str]


@registry.register
class TagDeleted(DomainEvent):
    key: str


@registry.register
class DatasetInputLogged(DomainEvent):
    """A dataset the run read; `dataset_schema` and `dataset_profile` are opaque JSON, as in MLflow.
    v2 added `tags` (the input's tags besides its context, MLflow's InputTag); v1 inputs have none."""

    schema_version = 2
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    context: str | None = None
    dataset_schema: str | None = None
    dataset_profile: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


@registry.upcaster("DatasetInputLogged", from_version=1)
def _dataset_input_logged_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "tags": {}}


@registry.register
class RunFinished(DomainEvent):
    status: TerminalStatus
    end_time_ms: int


@registry.register
class RunDeleted(DomainEvent):
    pass


@registry.register
class RunRestored(DomainEvent):
    pass
