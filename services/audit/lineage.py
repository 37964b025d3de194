"""The lineage graph and per-entity timelines: an async view over the tracking, artifacts, registry and
monitoring logs, fed by Kafka like the audit trail, rebuildable from position 0.

Every row carries the (service, position, recorded_at) of the event that wrote it, and an edge that
stops holding (an alias moved, a version left Production) is closed, not deleted, with the event that
ended it: "as of T" is a filter on those columns, not a second view.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from eventlog import RecordedEvent
from eventlog.projection import Projection, Tables
from modelog_services.audit.lineage_facts import SOURCES, EdgeClose, EdgeOpen, facts_of
from modelog_services.audit.summaries import summary


class LineageGraph(Projection):
    name = "lineage"
    schema = "audit"
    sources = SOURCES
    tables = ("lineage_nodes", "lineage_edges", "timeline", "model_names")

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.lineage_nodes} (
    node        text        NOT NULL,
    service     text        NOT NULL,
    kind        text        NOT NULL,
    position    bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    attrs       jsonb       NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (node, service)
);
CREATE TABLE {t.lineage_edges} (
    service          text        NOT NULL,
    position         bigint      NOT NULL,
    src              text        NOT NULL,
    dst              text        NOT NULL,
    relation         text        NOT NULL,
    recorded_at      timestamptz NOT NULL,
    ended_position   bigint,
    ended_at         timestamptz,
    PRIMARY KEY (service, position, src, dst, relation)
);
CREATE INDEX ON {t.lineage_edges} (src);
CREATE INDEX ON {t.lineage_edges} (dst, relation) WHERE ended_position IS NULL;
CREATE INDEX ON {t.lineage_edges} (dst);
CREATE TABLE {t.timeline} (
    entity      text        NOT NULL,
    service     text        NOT NULL,
    position    bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    event_type  text        NOT NULL,
    stream_id   text        NOT NULL,
    summary     text        NOT NULL,
    PRIMARY KEY (entity, service, position)
);
CREATE INDEX ON {t.timeline} (entity, recorded_at, service, position);
CREATE TABLE {t.model_names} (
    position    bigint      PRIMARY KEY,
    model_id    text        NOT NULL,
    name        text        NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX ON {t.model_names} (name);
CREATE INDEX ON {t.model_names} (model_id);
"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        nodes: list[tuple[Any, ...]] = []
        timeline: list[tuple[Any, ...]] = []
        names: list[tuple[Any, ...]] = []
        opens: list[tuple[Any, ...]] = []
        for ev in events:
            facts = facts_of(ev)
            if not facts.entities:
                continue
            at, where = ev.occurred_at, (ev.log, ev.position)
            actor = ev.metadata().acted_by
            line = summary(ev, actor)
            timeline += [(e, *where, at, actor, ev.type, ev.stream_id, line) for e in facts.entities]
            nodes += [(n.node, *where, n.kind, at, json.dumps(n.attrs)) for n in facts.nodes]
            if facts.model_name:
                names.append((ev.position, *facts.model_name, at))
            for op in facts.edges:
                if isinstance(op, EdgeOpen):
                    opens.append((*where, op.src, op.dst, op.relation, at))
                    continue
                # A close may end an edge this very batch opened: write those first.
                await self._open(conn, t, opens)
                opens = []
                await self._close(conn, t, ev, op)
        await self._open(conn, t, opens)
        if nodes:
            # Per (node, service): the first event that named it stays; later ones add attributes.
            await conn.executemany(
                f"INSERT INTO {t.lineage_nodes} (node, service, position, kind, recorded_at, attrs) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (node, service) DO UPDATE "
                f"SET attrs = {t.lineage_nodes}.attrs || excluded.attrs",
                nodes,
            )
        if timeline:
            await conn.executemany(
                f"INSERT INTO {t.timeline} (entity, service, position, recorded_at, actor, event_type, "
                "stream_id, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                timeline,
            )
        if names:
            await conn.executemany(
                f"INSERT INTO {t.model_names} (position, model_id, name, recorded_at) "
                "VALUES ($1, $2, $3, $4)",
                names,
            )

    @staticmethod
    async def _open(conn: asyncpg.Connection, t: Tables, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            await conn.executemany(
                f"INSERT INTO {t.lineage_edges} (service, position, src, dst, relation, recorded_at) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                rows,
            )

    @staticmethod
    async def _close(conn: asyncpg.Connection, t: Tables, ev: RecordedEvent, op: EdgeClose) -> None:
        await conn.execute(
            f"UPDATE {t.lineage_edges} SET ended_position = $1, ended_at = $2 "
            "WHERE dst = $3 AND relation = $4 AND service = $5 AND ended_position IS NULL "
            "AND ($6::text IS NULL OR src = $6)",
            ev.position,
            ev.occurred_at,
            op.dst,
            op.relation,
            ev.log,
            op.src,
        )
