"""Wiring of the audit service: global views over every log."""

from __future__ import annotations

from modelog_platform.service import ServiceSpec
from modelog_services.audit.projections import AuditTrail

SPEC = ServiceSpec(name="audit", projections=[AuditTrail()])
