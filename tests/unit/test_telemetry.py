"""Log lines carry the current trace and span ids (text or JSON)."""

from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from modelog_platform.telemetry import JsonFormatter, TraceIdFilter


def test_json_log_lines_carry_the_trace_id() -> None:
    tracer = TracerProvider().get_tracer("t")
    record = logging.LogRecord("modelog.x", logging.INFO, __file__, 1, "appended %d", (3,), None)
    with tracer.start_as_current_span("op") as span:
        assert TraceIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "appended 3" and line["level"] == "INFO"
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"


def test_without_a_span_the_ids_are_dashes() -> None:
    record = logging.LogRecord("modelog.x", logging.INFO, __file__, 1, "m", (), None)
    TraceIdFilter().filter(record)
    assert record.trace_id == "-" and record.span_id == "-"  # type: ignore[attr-defined]
