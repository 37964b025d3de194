"""DDL of one service log. Each log is a PostgreSQL schema named after its service."""

from __future__ import annotations

import re

import asyncpg

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}\Z")


def check_log_name(name: str) -> str:
    """Log names become SQL identifiers, so they are validated rather than quoted ad hoc."""
    if not _NAME.match(name):
        raise ValueError(f"invalid log name {name!r}: lower-case letters, digits and '_' only")
    return name


def log_ddl(log: str) -> str:
    s = check_log_name(log)
    return f"""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.events (
    position        bigint      PRIMARY KEY CHECK (position > 0),
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    type            text        NOT NULL,
    schema_version  integer     NOT NULL,
    payload         json        NOT NULL,  -- json, not jsonb: the exact bytes the hash covers
    metadata        json        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    prev_hash       bytea       NOT NULL,
    hash            bytea       NOT NULL,
    idempotency_key text,                  -- copied out of metadata so retries are found by index
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX IF NOT EXISTS events_idempotency_key
    ON {s}.events (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_recorded_at ON {s}.events (recorded_at);
-- Out-of-line but uncompressed: pglz cost ~7 ms of a ~10 ms insert of a 10k-point metrics event,
-- inside the log lock (measured); disk is cheaper than the lock.
ALTER TABLE {s}.events ALTER COLUMN payload SET STORAGE EXTERNAL;
-- Append-only: nothing but the appender's INSERT may touch this table. A superuser can still
-- drop the trigger; the hash chain is what makes that detectable.
CREATE OR REPLACE FUNCTION {s}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the {s} event log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS events_append_only ON {s}.events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
"""


async def create_log(conn: asyncpg.Connection, log: str) -> None:
    """Create a log's schema once. A log that exists is left alone: its DDL takes an ACCESS EXCLUSIVE
    lock on the events table, which a restarting process must not take while others append (seen:
    a deadlock with a live appender when a service restarted mid-stream)."""
    s = check_log_name(log)
    ready_sql = (
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'events_append_only' "
        "AND tgrelid = to_regclass($1))"
    )
    if await conn.fetchval(ready_sql, f"{s}.events"):
        return
    # DDL from concurrent processes would race on the catalog; serialise it, and look again under
    # the lock (another process may have just created it).
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('modelog.ddl'))")
        if not await conn.fetchval(ready_sql, f"{s}.events"):
            await conn.execute(log_ddl(log))
