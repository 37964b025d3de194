"""`modelog up` exports through the standard OTEL_* variables: to the OTLP endpoint they name, with
the service name and resource attributes they give, and without traces of its own polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog_platform.embedded import free_port
from tests.procs import Up, env_for


class Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """An OTLP/gRPC trace receiver that keeps (resource attributes, span) for every span."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, str], Any]] = []
        self.arrived = threading.Condition()

    def Export(self, request: Any, context: Any) -> Any:
        with self.arrived:
            for rs in request.resource_spans:
                attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
                self.spans += [(attrs, s) for ss in rs.scope_spans for s in ss.spans]
            self.arrived.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, name: str, timeout: float) -> tuple[dict[str, str], Any]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = [(a, s) for a, s in self.spans if s.name == name]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no span {name!r} within {timeout}s: {[s.name for _, s in self.spans]}"
                    )
                self.arrived.wait(left)


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    receiver = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield receiver, port
    server.stop(0)


@pytest.mark.slow
def test_up_exports_to_the_otlp_endpoint_under_the_configured_service_name(
    collector: tuple[Collector, int], modelog_home: Path
) -> None:
    receiver, port = collector
    addr = f"127.0.0.1:{free_port()}"
    env = env_for(
        modelog_home,
        addr,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_SERVICE_NAME="modelog-ci",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_METRICS_EXPORTER="none",
    )
    up = Up(env)
    try:
        up.wait_for("modelog ready on", 90)
        secret = (modelog_home / "admin-token").read_text().strip()
        with grpc.insecure_channel(addr) as ch:
            identity_pb2_grpc.IdentityStub(ch).WhoAmI(
                identity_pb2.WhoAmIRequest(), metadata=[("authorization", f"Bearer {secret}")]
            )
        attrs, _ = receiver.wait_for("/modelog.identity.v1.Identity/WhoAmI", 30)
        assert attrs["service.name"] == "modelog-ci"
        assert attrs["deployment.environment"] == "ci"
        roots = {s.name for _, s in receiver.spans if not s.parent_span_id}
        assert "/modelog.eventlog.v1.EventLog/Head" not in roots, "the runners' polling was exported"
    finally:
        assert up.stop() == 0
