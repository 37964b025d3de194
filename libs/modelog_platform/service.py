"""What a service contributes to a process: its gRPC servicers and its projections."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from eventlog.projection import Projection

if TYPE_CHECKING:
    from modelog_platform.app import Platform
    from modelog_platform.authz import Resolver

Register = Callable[[grpc.aio.Server, "Platform"], list[str]]
"""Adds servicers to the server; returns their full service names (for health and reflection)."""
Task = Callable[["Platform"], Coroutine[Any, Any, None]]
Resolvers = Callable[["Platform"], dict[str, "Resolver"]]
"""Where the service's resources live (experiment -> project, ...), for the permission table's checks."""
"""A background job of the service (the audit service's webhook dispatcher), run until the bus stops."""


@dataclass
class ServiceSpec:
    name: str
    register: Register | None = None
    projections: list[Projection] = field(default_factory=list)
    """Async views fed by Kafka (other services' events, or the service's own when lag is fine)."""
    inline_projections: list[Projection] = field(default_factory=list)
    """Views updated in the append transaction of the service's own log (read-your-writes)."""
    tasks: list[Task] = field(default_factory=list)
    """Started with the bus (after the server, so they can read other services' logs)."""
    resolvers: Resolvers | None = None
