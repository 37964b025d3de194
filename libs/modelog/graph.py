"""Lineage and timelines from Python, from the audit service's graph over every log.

    g = modelog.lineage("model:churn/3")                    # upstream and downstream, now
    g = modelog.lineage("monitor:churn-prod", direction="up", as_of=datetime(2026, 3, 1, tzinfo=UTC))
    [n.label for n in g.upstream_of("model:churn/3")]        # run, model artifact, datasets
    for e in modelog.timeline("run:<id>"): print(e.recorded_at, e.service, e.summary)

Entities: run:ID, experiment:ID, dataset:DIGEST, artifact:NAME[:vN|@ALIAS], model:NAME[/N|@ALIAS|#STAGE],
monitor:NAME. The graph trails the logs by the bus's lag (it is built from their events).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelog._client import Connection
from modelog._gen.audit.v1 import lineage_pb2 as pb
from modelog._gen.audit.v1 import lineage_pb2_grpc
from modelog._time import when as _when
from modelog.asof import timestamp
from modelog.errors import InvalidArgument

DIRECTIONS = {"up": pb.DIRECTION_UPSTREAM, "down": pb.DIRECTION_DOWNSTREAM, "both": pb.DIRECTION_BOTH}


@dataclass
class Node:
    id: str
    kind: str
    label: str
    attrs: dict[str, Any]
    service: str
    position: int
    recorded_at: datetime | None


@dataclass
class Edge:
    src: str
    dst: str
    relation: str
    service: str
    position: int
    recorded_at: datetime | None
    ended_at: datetime | None = None


@dataclass
class Graph:
    root: str
    nodes: dict[str, Node]
    edges: list[Edge]
    truncated: bool = False
    as_of: datetime | None = None

    def node(self, label_or_id: str) -> Node:
        for n in self.nodes.values():
            if label_or_id in (n.id, n.label):
                return n
        raise KeyError(label_or_id)

    def _near(self, label_or_id: str, up: bool) -> list[Node]:
        me = self.node(label_or_id).id
        return [self.nodes[e.src if up else e.dst] for e in self.edges if (e.dst if up else e.src) == me]

    def upstream_of(self, label_or_id: str) -> list[Node]:
        """The nodes with an edge into this one (what it was made from)."""
        return self._near(label_or_id, True)

    def downstream_of(self, label_or_id: str) -> list[Node]:
        return self._near(label_or_id, False)

    def triples(self) -> list[tuple[str, str, str]]:
        """(source label, relation, target label) for every edge: handy to read and to compare."""
        return [(self.nodes[e.src].label, e.relation, self.nodes[e.dst].label) for e in self.edges]


@dataclass
class TimelineEntry:
    service: str
    position: int
    recorded_at: datetime | None
    actor: str
    type: str
    stream_id: str
    summary: str


@dataclass
class _Call:
    connection: Connection | None

    def __call__(self, rpc: str, request: Any) -> Any:
        conn = self.connection or Connection()
        try:
            method: Callable[..., Any] = getattr(lineage_pb2_grpc.LineageStub(conn.channel), rpc)
            return method(request, timeout=60)  # raises modelog.errors (modelog._client)
        finally:
            if self.connection is None:
                conn.close()


def lineage(
    entity: str,
    *,
    direction: str = "both",
    depth: int = 0,
    as_of: datetime | None = None,
    connection: Connection | None = None,
) -> Graph:
    """The graph around `entity`: `direction` "up" (what it came from), "down" (what came of it) or
    "both"; `depth` hops (0: the server's default, 10); `as_of` an instant in the past."""
    if direction not in DIRECTIONS:
        raise InvalidArgument(f"direction is one of {', '.join(DIRECTIONS)}, not {direction!r}")
    req = pb.GetLineageRequest(entity=entity, direction=DIRECTIONS[direction], depth=depth)
    if as_of is not None:
        req.as_of.CopyFrom(timestamp(as_of))
    resp: pb.GetLineageResponse = _Call(connection)("GetLineage", req)
    nodes = {
        n.id: Node(
            n.id,
            n.kind,
            n.label,
            json.loads(n.attrs_json or "{}"),
            n.service,
            n.position,
            _when(n.recorded_at),
        )
        for n in resp.nodes
    }
    edges = [
        Edge(e.src, e.dst, e.relation, e.service, e.position, _when(e.recorded_at), _when(e.ended_at))
        for e in resp.edges
    ]
    return Graph(resp.root, nodes, edges, resp.truncated, as_of)


def timeline(
    entity: str,
    *,
    as_of: datetime | None = None,
    page_size: int = 500,
    connection: Connection | None = None,
) -> Iterator[TimelineEntry]:
    """Every event that touched `entity`, oldest first, across every log (paged as it is read)."""
    req = pb.TimelineRequest(entity=entity, limit=page_size)
    if as_of is not None:
        req.as_of.CopyFrom(timestamp(as_of))
    call = _Call(connection)
    while True:
        resp: pb.TimelineResponse = call("Timeline", req)
        for e in resp.entries:
            yield TimelineEntry(
                e.service, e.position, _when(e.recorded_at), e.actor, e.type, e.stream_id, e.summary
            )
        if not resp.next_page_token:
            return
        req.page_token = resp.next_page_token
