"""Wiring of the registry service: its gRPC servicer (with its clients of tracking and artifacts) and its
inline view on the registry log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from modelog._gen.registry.v1 import registry_pb2, registry_pb2_grpc
from modelog_platform.service import ServiceSpec

from .api import RegistryServicer
from .peers import Peers
from .places import resolvers
from .projections import RegistryView

if TYPE_CHECKING:
    from modelog_platform.app import Platform


def register(server: grpc.aio.Server, platform: Platform) -> list[str]:
    servicer = RegistryServicer(platform.stores["registry"], Peers(platform))
    registry_pb2_grpc.add_RegistryServicer_to_server(servicer, server)
    return [registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name]


SPEC = ServiceSpec(
    name="registry",
    register=register,
    inline_projections=[RegistryView()],
    resolvers=lambda platform: resolvers(platform.pool),
)
