"""The Registry's queries: every read the gRPC servicer answers, from the inline views (and the log,
for history and time travel). The servicer (api.py) adds the commands on top."""

from __future__ import annotations

import asyncpg
import grpc

from eventlog import EventStore, InvalidArgument
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog_platform import context
from modelog_platform.instants import as_of

from . import domain as d
from . import reads, search
from .asof import model_as_of
from .events import registry
from .history import summary, version_of

MAX_HISTORY = 10_000


def _page(request: pb.SearchModelsRequest | pb.SearchModelVersionsRequest) -> search.Page:
    return search.Page(request.filter, tuple(request.order_by), request.page_size, request.page_token)


class RegistryQueries(registry_pb2_grpc.RegistryServicer):
    """Needs `store`, `pool` and the name cache `_ids`, which the servicer sets."""

    store: EventStore
    _ids: dict[str, str]

    @property
    def pool(self) -> asyncpg.Pool:
        return self.store.pool

    async def _model_id(self, name: str, field: str = "model", *, fresh: bool = False) -> str:
        """The id of the model named `name`, from a cache that commands confirm (see _on_name)."""
        cached = None if fresh else self._ids.get(name)
        if cached is not None:
            return cached
        async with self.pool.acquire() as conn:
            model_id = await reads.require_model_id(conn, d.check_model_name(name, field))
        if len(self._ids) >= 10_000:
            self._ids.clear()
        self._ids[name] = model_id
        return model_id

    async def _model(self, model_id: str) -> pb.Model:
        async with self.pool.acquire() as conn:
            return await reads.get_model_by_id(conn, model_id)

    async def _version(self, model_id: str, version: int) -> pb.ModelVersion:
        async with self.pool.acquire() as conn:
            return await reads.get_version_by_id(conn, model_id, version)

    async def GetModel(
        self, request: pb.GetModelRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetModelResponse:
        async with self.pool.acquire() as conn:
            return pb.GetModelResponse(model=await reads.get_model(conn, request.name))

    async def SearchModels(
        self, request: pb.SearchModelsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SearchModelsResponse:
        async with self.pool.acquire() as conn:
            models, token = await search.search_models(
                conn,
                request.name_contains,
                dict(request.tags),
                request.include_deleted,
                _page(request),
                context.visible("model"),
            )
        return pb.SearchModelsResponse(models=models, next_page_token=token)

    async def GetModelVersion(
        self, request: pb.GetModelVersionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetModelVersionResponse:
        r = request.ref
        async with self.pool.acquire() as conn:
            return pb.GetModelVersionResponse(
                version=await reads.get_version(conn, r.model, r.version, r.alias)
            )

    async def GetByAlias(
        self, request: pb.GetByAliasRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetByAliasResponse:
        if not request.alias:
            raise InvalidArgument.field("alias", "is required")
        async with self.pool.acquire() as conn:
            return pb.GetByAliasResponse(
                version=await reads.get_version(conn, request.model, alias=request.alias)
            )

    async def SearchModelVersions(
        self, request: pb.SearchModelVersionsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SearchModelVersionsResponse:
        statuses = []
        for i, s in enumerate(request.statuses):
            if s not in reads.STATUS_NAME:
                raise InvalidArgument.field(f"statuses[{i}]", f"{s} is not a version status")
            statuses.append(reads.STATUS_NAME[s])
        stage = ""
        if request.stage:
            if request.stage not in reads.STAGE_NAME:
                raise InvalidArgument.field("stage", f"{request.stage} is not a stage")
            stage = reads.STAGE_NAME[request.stage]
        query = search.VersionQuery(
            model=request.model,
            tags=dict(request.tags),
            stage=stage,
            alias=request.alias,
            run_id=request.run_id,
            statuses=statuses,
        )
        async with self.pool.acquire() as conn:
            versions, token = await search.search_versions(
                conn, query, _page(request), context.visible("model")
            )
        return pb.SearchModelVersionsResponse(versions=versions, next_page_token=token)

    async def ListTransitionRequests(
        self, request: pb.ListTransitionRequestsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ListTransitionRequestsResponse:
        async with self.pool.acquire() as conn:
            found = await reads.list_requests(conn, request.model, request.version, request.open_only)
        return pb.ListTransitionRequestsResponse(requests=found)

    async def GetLineage(
        self, request: pb.GetLineageRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetLineageResponse:
        r = request.ref
        async with self.pool.acquire() as conn:
            return pb.GetLineageResponse(lineage=await reads.lineage(conn, r.model, r.version, r.alias))

    async def History(self, request: pb.HistoryRequest, ctx: grpc.aio.ServicerContext) -> pb.HistoryResponse:
        if request.limit < 0 or request.limit > MAX_HISTORY:
            raise InvalidArgument.field("limit", f"must be 0 (default 1000) to {MAX_HISTORY}")
        if request.from_stream_version < 0:
            raise InvalidArgument.field("from_stream_version", "must be >= 0")
        limit = request.limit or 1000
        model_id = await self._model_id(request.model)
        recorded = await self.store.read_stream(
            d.model_stream_id(model_id), max(1, request.from_stream_version)
        )
        entries: list[pb.HistoryEntry] = []
        next_version = 0
        for ev in recorded:
            if len(entries) == limit:
                next_version = ev.stream_version
                break
            e = ev.decode(registry)
            if request.version and version_of(e) != request.version:
                continue
            meta = ev.metadata()
            entries.append(
                pb.HistoryEntry(
                    position=ev.position,
                    stream_version=ev.stream_version,
                    recorded_at=reads.ts(ev.recorded_at),
                    actor=meta.actor,
                    type=ev.type,
                    version=version_of(e),
                    summary=summary(e, meta.acted_by),
                    payload_json=ev.payload_json,
                    request_id=meta.request_id or "",
                    occurred_at=reads.ts(ev.occurred_at),
                    acted_by=meta.acted_by,
                    imported_from=meta.origin.source if meta.origin else "",
                )
            )
        return pb.HistoryResponse(model_id=model_id, entries=entries, next_stream_version=next_version)

    async def GetModelAsOf(
        self, request: pb.GetModelAsOfRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetModelAsOfResponse:
        at = as_of(request)
        if at is None:
            raise InvalidArgument.field("as_of", "give the instant to travel to (GetModel answers for now)")
        return await model_as_of(self.store, d.check_model_name(request.name, "name"), at)
