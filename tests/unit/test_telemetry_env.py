"""The standard OTEL_* variables decide the resource and the exporters, as with any OTel SDK."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from modelog_platform.telemetry import TelemetryError, exporter_names, load_exporter, resource

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(key, raising=False)


def test_otel_service_name_wins_over_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "modelog-tracking")
    assert resource("modelog").attributes["service.name"] == "modelog-tracking"


def test_resource_attributes_are_kept_and_may_name_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "modelog.service=audit,deployment.environment=ci")
    attrs = resource("modelog").attributes
    assert (attrs["service.name"], attrs["modelog.service"], attrs["deployment.environment"]) == (
        "modelog",
        "audit",
        "ci",
    )
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    assert resource("modelog").attributes["service.name"] == "from-attributes"


def test_without_any_setting_nothing_is_exported() -> None:
    assert exporter_names("traces", {}) == [] and exporter_names("metrics", {}) == []


def test_an_endpoint_means_otlp_over_grpc_unless_a_protocol_says_otherwise() -> None:
    assert exporter_names("traces", ENDPOINT) == ["otlp_proto_grpc"]
    assert exporter_names("traces", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317"}) == [
        "otlp_proto_grpc"
    ]
    http = {**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    assert exporter_names("traces", http) == ["otlp_proto_http"]
    per_signal = {**http, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}
    assert exporter_names("metrics", per_signal) == ["otlp_proto_grpc"]
    with pytest.raises(TelemetryError, match="http/json"):
        exporter_names("traces", {**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


def test_exporter_none_and_sdk_disabled_turn_export_off() -> None:
    assert exporter_names("traces", {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}) == []
    assert exporter_names("metrics", {**ENDPOINT, "OTEL_METRICS_EXPORTER": "none"}) == []
    assert exporter_names("traces", {**ENDPOINT, "OTEL_SDK_DISABLED": "true"}) == []


def test_named_exporters_load_from_their_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    assert exporter_names("traces", {"OTEL_TRACES_EXPORTER": "console,otlp"}) == [
        "console",
        "otlp_proto_grpc",
    ]
    assert isinstance(load_exporter("traces", "console"), ConsoleSpanExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector.example:4317")
    otlp = load_exporter("traces", "otlp_proto_grpc")
    assert type(otlp).__name__ == "OTLPSpanExporter" and "collector.example:4317" in otlp._endpoint


def test_a_missing_exporter_package_is_named() -> None:
    if entry_points(group="opentelemetry_traces_exporter", name="otlp_proto_http"):
        pytest.skip("opentelemetry-exporter-otlp-proto-http is installed here")
    with pytest.raises(TelemetryError, match="pip install opentelemetry-exporter-otlp-proto-http"):
        load_exporter("traces", "otlp_proto_http")
