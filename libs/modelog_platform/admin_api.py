"""gRPC Admin: list projections with their lag, rebuild one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from eventlog import InvalidArgument, NotFound
from eventlog.projection import Tables, checkpoint
from eventlog.rebuild import rebuild
from eventlog.sources import LogReader, StoreReader
from modelog._gen.admin.v1 import admin_pb2, admin_pb2_grpc

if TYPE_CHECKING:
    from modelog_platform.app import Platform


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def _reader(self) -> LogReader:
        return self.platform.reader or StoreReader(self.platform.stores)

    async def ListProjections(
        self, request: admin_pb2.ListProjectionsRequest, ctx: grpc.aio.ServicerContext
    ) -> admin_pb2.ListProjectionsResponse:
        reader = self._reader()
        out = []
        fed = self.platform.async_projections()
        async with self.platform.pool.acquire() as conn:
            for p in self.platform.projections():
                runner = self.platform.runners.get(p.name)
                info = admin_pb2.ProjectionInfo(
                    name=p.name, schema=p.schema, mode="async" if p.name in fed else "inline"
                )
                for source in p.sources:
                    cp = await checkpoint(conn, p, source, Tables(p.schema))
                    head = await reader.head(source)
                    info.sources.append(
                        admin_pb2.ProjectionSource(
                            source=source, checkpoint=cp, head=head, lag=max(0, head - cp)
                        )
                    )
                if runner:
                    s = runner.stats
                    info.applied, info.duplicates = s.applied, s.duplicates
                    info.healed_gaps, info.consumer_errors = s.healed_gaps, s.consumer_errors
                out.append(info)
        return admin_pb2.ListProjectionsResponse(projections=out)

    async def RebuildProjection(
        self, request: admin_pb2.RebuildProjectionRequest, ctx: grpc.aio.ServicerContext
    ) -> admin_pb2.RebuildProjectionResponse:
        if not request.name:
            raise InvalidArgument.field("name", "the projection to rebuild is required")
        by_name = {p.name: p for p in self.platform.projections()}
        projection = by_name.get(request.name)
        if projection is None:
            raise NotFound(
                f"no projection named {request.name!r}; this process hosts: {', '.join(sorted(by_name))}"
            )
        report = await rebuild(self.platform.pool, projection, self._reader())
        return admin_pb2.RebuildProjectionResponse(
            name=report.projection, events=report.events, seconds=report.seconds
        )
