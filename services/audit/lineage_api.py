"""gRPC Lineage servicer: validates requests, asks the lineage view, maps rows to messages."""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import InvalidArgument
from modelog._gen.audit.v1 import lineage_pb2 as pb
from modelog._gen.audit.v1 import lineage_pb2_grpc
from modelog_platform.instants import as_of
from modelog_services.audit import lineage_query as q

MAX_DEPTH = 50
MAX_TIMELINE = 1000
_DIRECTIONS = {
    pb.DIRECTION_UNSPECIFIED: "both",
    pb.DIRECTION_BOTH: "both",
    pb.DIRECTION_UPSTREAM: "up",
    pb.DIRECTION_DOWNSTREAM: "down",
}


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value)
    return out


class LineageServicer(lineage_pb2_grpc.LineageServicer):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def GetLineage(
        self, request: pb.GetLineageRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetLineageResponse:
        direction = _DIRECTIONS.get(request.direction)
        if direction is None:
            raise InvalidArgument.field("direction", "use UPSTREAM, DOWNSTREAM or BOTH")
        if not 0 <= request.depth <= MAX_DEPTH:
            raise InvalidArgument.field("depth", f"must be 0 (default 10) to {MAX_DEPTH}")
        at = as_of(request)
        async with self.pool.acquire() as conn:
            g, _ = await q.lineage(conn, request.entity, direction, request.depth or 10, at)
        nodes = [
            pb.LineageNode(
                id=n["id"],
                kind=n["kind"],
                label=n["label"],
                attrs_json=json.dumps(n["attrs"], sort_keys=True),
                service=n.get("service", ""),
                position=n.get("position", 0),
                recorded_at=_ts(n.get("recorded_at")),
            )
            for n in g.nodes.values()
        ]
        edges = [
            pb.LineageEdge(
                src=e["src"],
                dst=e["dst"],
                relation=e["relation"],
                service=e["service"],
                position=e["position"],
                recorded_at=_ts(e["recorded_at"]),
                ended_position=e["ended_position"] or 0,
                ended_at=_ts(e["ended_at"]),
            )
            for e in g.edges
        ]
        return pb.GetLineageResponse(root=g.root, nodes=nodes, edges=edges, truncated=g.truncated)

    async def Timeline(
        self, request: pb.TimelineRequest, context: grpc.aio.ServicerContext
    ) -> pb.TimelineResponse:
        if not 0 <= request.limit <= MAX_TIMELINE:
            raise InvalidArgument.field("limit", f"must be 0 (default 100) to {MAX_TIMELINE}")
        at = as_of(request)
        async with self.pool.acquire() as conn:
            key, rows, token = await q.timeline(
                conn, request.entity, at, request.limit or 100, request.page_token
            )
        entries = [
            pb.TimelineEntry(
                service=r["service"],
                position=r["position"],
                recorded_at=_ts(r["recorded_at"]),
                actor=r["actor"],
                type=r["event_type"],
                stream_id=r["stream_id"],
                summary=r["summary"],
            )
            for r in rows
        ]
        return pb.TimelineResponse(root=key, entries=entries, next_page_token=token)
