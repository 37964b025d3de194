"""Wiring of the monitoring service: its gRPC servicer (with its clients of the registry and artifacts),
its inline view, and the timer that closes time windows and resumes unfinished profiling."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from modelog._gen.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from modelog_platform.service import ServiceSpec

from .api import MonitoringServicer
from .peers import MonitoringPeers
from .places import resolvers
from .projections import MonitoringView
from .service import MonitorService

if TYPE_CHECKING:
    from modelog_platform.app import Platform


def register(server: grpc.aio.Server, platform: Platform) -> list[str]:
    service = MonitorService(platform.stores["monitoring"], MonitoringPeers(platform))
    platform.monitoring = service  # type: ignore[attr-defined]
    monitoring_pb2_grpc.add_MonitoringServicer_to_server(MonitoringServicer(service), server)
    return [monitoring_pb2.DESCRIPTOR.services_by_name["Monitoring"].full_name]


async def run_timers(platform: Platform) -> None:
    """A background job, so under `modelog up --workers` only the bus worker closes windows on time
    (one closer, not one per serving worker racing on the monitor's stream)."""
    service: MonitorService = platform.monitoring  # type: ignore[attr-defined]
    await service.run_timers()


SPEC = ServiceSpec(
    name="monitoring",
    register=register,
    inline_projections=[MonitoringView()],
    tasks=[run_timers],
    resolvers=lambda platform: resolvers(platform.pool),
)
