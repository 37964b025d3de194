"""Modelog's services. Each subpackage's main.SPEC says what it adds to a process.

Nothing is imported here at load time: an ingest worker process imports one module of the
artifacts service, and should not pay for the platform (gRPC servers, pydantic settings) to start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelog_platform.service import ServiceSpec


def spec(name: str) -> ServiceSpec:
    from modelog.shared.settings import SERVICES

    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; services are: {', '.join(SERVICES)}")
    module = importlib.import_module(f"modelog_services.{name}.main")
    value: ServiceSpec = module.SPEC
    return value
