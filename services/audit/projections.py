"""The audit service's views over every log. Async: fed by Kafka, healed from the source logs."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from eventlog import RecordedEvent
from eventlog.projection import Projection, Tables
from modelog.shared.settings import PLATFORM_LOGS, SERVICES


class AuditTrail(Projection):
    """One row per event of every log: who did what to which stream, when."""

    name = "audit_trail"
    schema = "audit"
    sources = (*SERVICES, *PLATFORM_LOGS)
    tables = ("trail",)

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.trail} (
    service     text        NOT NULL,
    position    bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    event_type  text        NOT NULL,
    stream_id   text        NOT NULL,
    event_id    uuid        NOT NULL,
    PRIMARY KEY (service, position)
);
CREATE INDEX ON {t.trail} (recorded_at);
CREATE INDEX ON {t.trail} (actor, recorded_at);
CREATE INDEX ON {t.trail} (stream_id);
"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        await conn.execute(
            f"INSERT INTO {t.trail} (service, position, recorded_at, actor, event_type, stream_id, event_id) "
            "SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], "
            "$6::text[], $7::uuid[])",
            [e.log for e in events],
            [e.position for e in events],
            [e.recorded_at for e in events],
            [json.loads(e.metadata_json).get("actor", "system") for e in events],
            [e.type for e in events],
            [e.stream_id for e in events],
            [e.event_id for e in events],
        )
