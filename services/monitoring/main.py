"""Wiring of the monitoring service (its domain arrives with its own issue)."""

from __future__ import annotations

from modelog_platform.service import ServiceSpec

SPEC = ServiceSpec(name="monitoring")
