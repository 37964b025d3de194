"""Wiring of the tracking service: its gRPC servicer and its inline views on the tracking log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from modelog._gen.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from modelog_platform.service import ServiceSpec

from .api import TrackingServicer
from .places import resolvers
from .projections import ExperimentsView, RunsView

if TYPE_CHECKING:
    from modelog_platform.app import Platform


def register(server: grpc.aio.Server, platform: Platform) -> list[str]:
    tracking_pb2_grpc.add_TrackingServicer_to_server(TrackingServicer(platform.stores["tracking"]), server)
    return [tracking_pb2.DESCRIPTOR.services_by_name["Tracking"].full_name]


SPEC = ServiceSpec(
    name="tracking",
    register=register,
    inline_projections=[ExperimentsView(), RunsView()],
    resolvers=lambda platform: resolvers(platform.pool),
)
