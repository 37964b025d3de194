"""The platform's own measurements, through the OpenTelemetry metrics API (no-ops until a provider is set)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

meter = metrics.get_meter("modelog")

append_duration = meter.create_histogram(
    "modelog.append.duration", unit="ms", description="Time from append() to commit, per command"
)
healed_gaps = meter.create_counter(
    "modelog.projection.healed_gaps", description="Gaps a projection filled by reading the source log"
)
consumer_errors = meter.create_counter(
    "modelog.projection.consumer_errors", description="Kafka consumer failures (reconnects) and bad messages"
)
relay_refusals = meter.create_counter(
    "modelog.relay.refusals",
    description="Events the broker refused (published as ce_omitted stand-ins; read them from the log)",
)

_lag_sources: list[Callable[[], Iterable[tuple[int, dict[str, str]]]]] = []


def _observe(lag_kind: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(_: CallbackOptions) -> Iterable[Observation]:
        for source in _lag_sources:
            for value, attrs in source():
                if attrs.get("kind") == lag_kind:
                    yield Observation(value, attrs)

    return callback


meter.create_observable_gauge(
    "modelog.relay.lag", [_observe("relay")], description="Events committed, not yet published"
)
meter.create_observable_gauge(
    "modelog.projection.lag", [_observe("projection")], description="Events committed, not yet projected"
)


def register_lag(source: Callable[[], Iterable[tuple[int, dict[str, str]]]]) -> None:
    """Relays and runners report their last known lag; gauges read it when metrics are collected."""
    _lag_sources.append(source)


def unregister_lag(source: Callable[[], Iterable[tuple[int, dict[str, str]]]]) -> None:
    if source in _lag_sources:
        _lag_sources.remove(source)
