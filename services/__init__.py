"""Modelog's services. Each subpackage's main.SPEC says what it adds to a process."""

from __future__ import annotations

import importlib

from modelog_platform.service import ServiceSpec
from modelog_platform.settings import SERVICES


def spec(name: str) -> ServiceSpec:
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; services are: {', '.join(SERVICES)}")
    module = importlib.import_module(f"modelog_services.{name}.main")
    value: ServiceSpec = module.SPEC
    return value
