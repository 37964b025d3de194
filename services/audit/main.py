"""Wiring of the audit service: global views over every log, the signed export, subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from eventlog.records import RecordedEvent
from eventlog.sources import StoreReader
from modelog._gen.audit.v1 import (
    audit_pb2,
    lineage_pb2,
    lineage_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)
from modelog.shared.settings import PLATFORM_LOGS, SERVICES
from modelog_platform.service import ServiceSpec
from modelog_services.audit.api import AuditServicer, add_to_server
from modelog_services.audit.dispatcher import Dispatcher, Policy
from modelog_services.audit.lineage import LineageGraph
from modelog_services.audit.lineage_api import LineageServicer
from modelog_services.audit.projections import AuditTrail
from modelog_services.audit.signing import SigningKey
from modelog_services.audit.webhook_store import WebhooksView
from modelog_services.audit.webhooks_api import WebhooksServicer

if TYPE_CHECKING:
    from modelog_platform.app import Platform


class PlatformReader:
    """Logs this process hosts are read directly; the others through their EventLog API."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.local = StoreReader(platform.stores)

    def _remote(self, log: str) -> StoreReader:
        if log in self.platform.stores:
            return self.local
        if self.platform.reader is None:
            raise RuntimeError(f"the {log} log is not hosted here and no peer reader is configured")
        return self.platform.reader  # type: ignore[return-value]

    async def read(self, log: str, from_position: int, limit: int) -> list[RecordedEvent]:
        return await self._remote(log).read(log, from_position, limit)

    async def head(self, log: str) -> int:
        return await self._remote(log).head(log)


LOGS = [*SERVICES, *PLATFORM_LOGS]


def register(server: grpc.aio.Server, platform: Platform) -> list[str]:
    key = SigningKey.load_or_create(platform.settings.home)
    servicer = AuditServicer(platform.stores, PlatformReader(platform), [*SERVICES, *PLATFORM_LOGS], key)
    add_to_server(servicer, server)
    hooks = WebhooksServicer(
        platform.pool, platform.stores, PlatformReader(platform), LOGS, Policy.of(platform.settings)
    )
    webhooks_pb2_grpc.add_WebhooksServicer_to_server(hooks, server)
    lineage_pb2_grpc.add_LineageServicer_to_server(LineageServicer(platform.pool), server)
    return [
        audit_pb2.DESCRIPTOR.services_by_name["Audit"].full_name,
        lineage_pb2.DESCRIPTOR.services_by_name["Lineage"].full_name,
        webhooks_pb2.DESCRIPTOR.services_by_name["Webhooks"].full_name,
    ]


async def dispatch_webhooks(platform: Platform) -> None:
    policy = Policy.of(platform.settings)
    await Dispatcher(platform.pool, platform.stores, PlatformReader(platform), LOGS, policy).run()


SPEC = ServiceSpec(
    name="audit",
    register=register,
    projections=[AuditTrail(), LineageGraph()],
    inline_projections=[WebhooksView()],
    tasks=[dispatch_webhooks],
)
