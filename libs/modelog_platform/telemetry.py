"""OpenTelemetry set-up from the standard OTEL_* variables.

- Resource: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; `service_name` is only the default.
- Exporters: OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER (`otlp`, `console`, `none`, or any
  installed exporter's entry-point name, comma separated); `otlp` speaks OTEL_EXPORTER_OTLP_PROTOCOL
  (or the per-signal variable): `grpc` (installed) or `http/protobuf` (needs
  opentelemetry-exporter-otlp-proto-http). Unset, the default is `otlp` when an OTLP endpoint is set
  and `none` otherwise, so a laptop without a collector logs no export errors. The exporters read
  OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _INSECURE, _CERTIFICATE, ... themselves.
- OTEL_SDK_DISABLED=true installs nothing; the sampler is the SDK's (OTEL_TRACES_SAMPLER, default
  parentbased_always_on: an unsampled parent keeps its children out of the export).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger("modelog.telemetry")

_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_PACKAGE_OF = {
    "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
    "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
}


class TelemetryError(ValueError):
    """An OTEL_* setting names an exporter or protocol that cannot be used; says what to do."""


def resource(service_name: str) -> Resource:
    """The process's resource: OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME as the SDK reads them,
    with `service_name` only when neither names the service."""
    named = SERVICE_NAME in OTELResourceDetector().detect().attributes
    return Resource.create({} if named else {SERVICE_NAME: service_name})


def exporter_names(signal: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Entry-point names of the exporters for `signal` ("traces" or "metrics"), [] for none."""
    env = os.environ if env is None else env
    up = signal.upper()
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{up}_ENDPOINT")
    chosen = env.get(f"OTEL_{up}_EXPORTER") or ("otlp" if endpoint else "none")
    names: list[str] = []
    for name in filter(None, (n.strip().lower() for n in chosen.split(","))):
        if name == "none":
            return []
        if name == "otlp":
            protocol = env.get(f"OTEL_EXPORTER_OTLP_{up}_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            protocol = (protocol or "grpc").strip()
            if protocol not in _OTLP_BY_PROTOCOL:
                raise TelemetryError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: use grpc or http/protobuf"
                )
            name = _OTLP_BY_PROTOCOL[protocol]
        names.append(name)
    return names


def load_exporter(signal: str, name: str) -> Any:
    """An exporter instance from its installed entry point (`opentelemetry_<signal>_exporter`)."""
    found = entry_points(group=f"opentelemetry_{signal}_exporter", name=name)
    if not found:
        package = _PACKAGE_OF.get(name, f"the package that provides the {name!r} exporter")
        raise TelemetryError(f"OTEL_{signal.upper()}_EXPORTER asks for {name!r}: pip install {package}")
    return next(iter(found)).load()()


def setup_metrics(service_name: str = "modelog") -> None:
    """Metrics go out through the configured exporters (every 10 s unless OTEL_METRIC_EXPORT_INTERVAL
    says otherwise); with none, the API stays a no-op."""
    names = exporter_names("metrics")
    if not names:
        return
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    interval = None if os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") else 10_000
    readers = [
        PeriodicExportingMetricReader(load_exporter("metrics", n), export_interval_millis=interval)
        for n in names
    ]
    metrics.set_meter_provider(MeterProvider(resource=resource(service_name), metric_readers=readers))


def setup_tracing(service_name: str = "modelog") -> TracerProvider | None:
    """Install a tracer provider once per process; returns None when one is already installed."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return None
    names = exporter_names("traces")
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    provider = TracerProvider(resource=resource(service_name))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(load_exporter("traces", name)))
    if names:
        log.info("exporting traces with %s", ", ".join(names))
    trace.set_tracer_provider(provider)
    return provider


class TraceIdFilter(logging.Filter):
    """Puts the current trace and span ids on every log record, so logs join traces."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else "-"
        record.span_id = f"{ctx.span_id:016x}" if ctx.is_valid else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (MODELOG_LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", "-"),
            "span_id": getattr(record, "span_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(TraceIdFilter())
    text = "%(asctime)s %(levelname)s %(name)s trace=%(trace_id)s span=%(span_id)s %(message)s"
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(text))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
