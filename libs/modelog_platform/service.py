"""What a service contributes to a process: its gRPC servicers and its projections."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

from eventlog.projection import Projection

if TYPE_CHECKING:
    from modelog_platform.app import Platform

Register = Callable[[grpc.aio.Server, "Platform"], list[str]]
"""Adds servicers to the server; returns their full service names (for health and reflection)."""


@dataclass
class ServiceSpec:
    name: str
    register: Register | None = None
    projections: list[Projection] = field(default_factory=list)
    """Async views fed by Kafka (other services' events, or the service's own when lag is fine)."""
    inline_projections: list[Projection] = field(default_factory=list)
    """Views updated in the append transaction of the service's own log (read-your-writes)."""
