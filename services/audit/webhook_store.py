"""Webhook tables: the registrations view (inline projection of the audit log), and the dispatcher's
operational tables beside it: secrets, cursors and the delivery log.

The view is rebuildable from the log like any projection. The other tables are not derived from
events: the secret is kept out of events on purpose (see events.py); a cursor and its delivery-log
row are written in one transaction, so a restarted dispatcher resumes exactly after the last event
it finished and continues the attempt count of the one it was retrying.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from eventlog import RecordedEvent
from eventlog.projection import Projection, Tables

from .events import (
    WebhookCreated,
    WebhookDeleted,
    WebhookDisabled,
    WebhookEnabled,
    WebhookFilterValue,
    WebhookUpdated,
    registry,
)

S = "audit"
SIDE_TABLES = f"""
CREATE TABLE IF NOT EXISTS {S}.webhook_secrets (
    webhook_id  text NOT NULL,
    fingerprint text NOT NULL,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (webhook_id, fingerprint)
);
CREATE TABLE IF NOT EXISTS {S}.webhook_cursors (
    webhook_id text PRIMARY KEY,
    positions  jsonb NOT NULL,
    failures   int NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {S}.webhook_deliveries (
    id            bigserial PRIMARY KEY,
    webhook_id    text NOT NULL,
    event_id      text NOT NULL,
    service       text NOT NULL,
    position      bigint NOT NULL,
    event_type    text NOT NULL,
    kind          text NOT NULL,
    status        text NOT NULL,
    attempts      int NOT NULL DEFAULT 0,
    series_start  int NOT NULL DEFAULT 0,
    response_code int NOT NULL DEFAULT 0,
    latency_ms    double precision NOT NULL DEFAULT 0,
    last_error    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_dispatch
    ON {S}.webhook_deliveries (webhook_id, service, position) WHERE kind = 'dispatch';
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_hook ON {S}.webhook_deliveries (webhook_id, id);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_status ON {S}.webhook_deliveries (status, id);
CREATE TABLE IF NOT EXISTS {S}.webhook_attempts (
    delivery_id   bigint NOT NULL,
    attempt       int NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    response_code int NOT NULL,
    latency_ms    double precision NOT NULL,
    error         text NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
"""

_TYPES = frozenset(
    c.type for c in (WebhookCreated, WebhookUpdated, WebhookDisabled, WebhookEnabled, WebhookDeleted)
)


class WebhooksView(Projection):
    """One row per webhook as its events leave it (inline: a created webhook is readable at once)."""

    name = "webhooks"
    schema = S
    sources = ("audit",)
    tables = ("webhooks",)
    handles = _TYPES

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.webhooks} (
    webhook_id         text PRIMARY KEY,
    url                text NOT NULL,
    filter             jsonb NOT NULL,
    description        text NOT NULL,
    status             text NOT NULL,
    disabled_reason    text NOT NULL DEFAULT '',
    failures           int NOT NULL DEFAULT 0,
    secret_fingerprint text NOT NULL,
    start              jsonb NOT NULL,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
{SIDE_TABLES}
"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        for rec in events:
            ev = rec.decode(registry)
            at = rec.recorded_at
            if isinstance(ev, WebhookCreated):
                await conn.execute(
                    f"INSERT INTO {t.webhooks} (webhook_id, url, filter, description, status, "
                    "secret_fingerprint, start, created_by, created_at, updated_at) "
                    "VALUES ($1, $2, $3::jsonb, $4, 'enabled', $5, $6::jsonb, $7, $8, $8)",
                    ev.webhook_id,
                    ev.url,
                    ev.filter.model_dump_json(),
                    ev.description,
                    ev.secret_fingerprint,
                    json.dumps(ev.start),
                    json.loads(rec.metadata_json).get("actor", "system"),
                    at,
                )
            elif isinstance(ev, WebhookUpdated):
                await conn.execute(
                    f"UPDATE {t.webhooks} SET url = coalesce($2, url), filter = coalesce($3::jsonb, filter), "
                    "description = coalesce($4, description), "
                    "secret_fingerprint = coalesce($5, secret_fingerprint), updated_at = $6 "
                    "WHERE webhook_id = $1",
                    ev.webhook_id,
                    ev.url,
                    ev.filter.model_dump_json() if ev.filter is not None else None,
                    ev.description,
                    ev.secret_fingerprint,
                    at,
                )
            elif isinstance(ev, WebhookDisabled):
                await conn.execute(
                    f"UPDATE {t.webhooks} SET status = 'disabled', disabled_reason = $2, failures = $3, "
                    "updated_at = $4 WHERE webhook_id = $1",
                    ev.webhook_id,
                    ev.reason,
                    ev.failures,
                    at,
                )
            elif isinstance(ev, WebhookEnabled | WebhookDeleted):
                status = "enabled" if isinstance(ev, WebhookEnabled) else "deleted"
                await conn.execute(
                    f"UPDATE {t.webhooks} SET status = $2, disabled_reason = '', failures = 0, "
                    "updated_at = $3 WHERE webhook_id = $1",
                    ev.webhook_id,
                    status,
                    at,
                )


@dataclass(frozen=True)
class WebhookRow:
    webhook_id: str
    url: str
    filter: WebhookFilterValue
    description: str
    status: str
    disabled_reason: str
    failures: int
    secret_fingerprint: str
    start: dict[str, int]
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: asyncpg.Record) -> WebhookRow:
        return cls(
            r["webhook_id"],
            r["url"],
            WebhookFilterValue.model_validate_json(r["filter"]),
            r["description"],
            r["status"],
            r["disabled_reason"],
            r["failures"],
            r["secret_fingerprint"],
            json.loads(r["start"]),
            r["created_by"],
            r["created_at"],
            r["updated_at"],
        )


_ROW = (
    "webhook_id, url, filter::text AS filter, description, status, disabled_reason, failures, "
    "secret_fingerprint, start::text AS start, created_by, created_at, updated_at"
)


async def get(pool: asyncpg.Pool, webhook_id: str) -> WebhookRow | None:
    r = await pool.fetchrow(f"SELECT {_ROW} FROM {S}.webhooks WHERE webhook_id = $1", webhook_id)
    return WebhookRow.of(r) if r is not None else None


async def list_all(pool: asyncpg.Pool, include_deleted: bool = False) -> list[WebhookRow]:
    where = "" if include_deleted else "WHERE status <> 'deleted'"
    rows = await pool.fetch(f"SELECT {_ROW} FROM {S}.webhooks {where} ORDER BY created_at, webhook_id")
    return [WebhookRow.of(r) for r in rows]


# ---------------------------------------------------------------- secrets


async def put_secret(pool: asyncpg.Pool, webhook_id: str, fingerprint: str, secret: str) -> None:
    await pool.execute(
        f"INSERT INTO {S}.webhook_secrets (webhook_id, fingerprint, secret) VALUES ($1, $2, $3) "
        "ON CONFLICT (webhook_id, fingerprint) DO NOTHING",
        webhook_id,
        fingerprint,
        secret,
    )


async def secret(pool: asyncpg.Pool, webhook_id: str, fingerprint: str) -> str | None:
    value = await pool.fetchval(
        f"SELECT secret FROM {S}.webhook_secrets WHERE webhook_id = $1 AND fingerprint = $2",
        webhook_id,
        fingerprint,
    )
    return str(value) if value is not None else None


async def prune_secrets(pool: asyncpg.Pool, webhook_id: str, keep: str | None) -> None:
    """Erase every secret of a webhook but the one in force (all of them once it is deleted)."""
    await pool.execute(
        f"DELETE FROM {S}.webhook_secrets WHERE webhook_id = $1 AND fingerprint IS DISTINCT FROM $2",
        webhook_id,
        keep,
    )


# ---------------------------------------------------------------- cursors and the delivery log


async def cursor(pool: asyncpg.Pool, webhook_id: str) -> tuple[dict[str, int] | None, int]:
    """(positions, consecutive failed deliveries); positions None before the first checkpoint."""
    r = await pool.fetchrow(
        f"SELECT positions::text, failures FROM {S}.webhook_cursors WHERE webhook_id = $1", webhook_id
    )
    return (json.loads(r[0]), r[1]) if r is not None else (None, 0)


async def save_cursor(
    conn: asyncpg.Connection | asyncpg.Pool, webhook_id: str, positions: dict[str, int], failures: int
) -> None:
    await conn.execute(
        f"INSERT INTO {S}.webhook_cursors (webhook_id, positions, failures) VALUES ($1, $2::jsonb, $3) "
        "ON CONFLICT (webhook_id) DO UPDATE SET positions = excluded.positions, "
        "failures = excluded.failures, updated_at = now()",
        webhook_id,
        json.dumps(positions),
        failures,
    )


@dataclass(frozen=True)
class Started:
    delivery_id: int
    attempts: int
    """Attempts made so far, over every series (a restart or a re-enable continues the count)."""
    series_attempts: int
    """Attempts of the current series (a failed delivery sent again starts a new series)."""


async def start_delivery(pool: asyncpg.Pool, webhook_id: str, ev: RecordedEvent, kind: str) -> Started:
    """The delivery-log row of this event: the dispatcher's existing one (a retry interrupted by a
    restart, or a failed one sent again after re-enabling), else a new row."""
    if kind == "dispatch":
        r = await pool.fetchrow(
            f"INSERT INTO {S}.webhook_deliveries (webhook_id, event_id, service, position, event_type, "
            "kind, status) VALUES ($1, $2, $3, $4, $5, 'dispatch', 'pending') "
            "ON CONFLICT (webhook_id, service, position) WHERE kind = 'dispatch' DO UPDATE "
            "SET series_start = CASE WHEN webhook_deliveries.status IN ('failed', 'delivered') "
            "THEN webhook_deliveries.attempts ELSE webhook_deliveries.series_start END, "
            "status = CASE WHEN webhook_deliveries.status IN ('failed', 'delivered') THEN 'pending' "
            "ELSE webhook_deliveries.status END, updated_at = now() "
            "RETURNING id, attempts, series_start",
            webhook_id,
            ev.event_id,
            ev.log,
            ev.position,
            ev.type,
        )
    else:
        r = await pool.fetchrow(
            f"INSERT INTO {S}.webhook_deliveries (webhook_id, event_id, service, position, event_type, "
            "kind, status) VALUES ($1, $2, $3, $4, $5, $6, 'pending') RETURNING id, attempts, series_start",
            webhook_id,
            ev.event_id,
            ev.log,
            ev.position,
            ev.type,
            kind,
        )
    return Started(r[0], r[1], r[1] - r[2])


async def unfinished(pool: asyncpg.Pool, webhook_id: str, positions: dict[str, int]) -> set[tuple[str, int]]:
    """(service, position) of dispatch rows after the cursor not yet delivered: a retry cut short by
    a restart, or the failed delivery that disabled the webhook."""
    rows = await pool.fetch(
        f"SELECT service, position FROM {S}.webhook_deliveries WHERE webhook_id = $1 "
        "AND kind = 'dispatch' AND status <> 'delivered' "
        "AND position > coalesce(($2::jsonb ->> service)::bigint, 0)",
        webhook_id,
        json.dumps(positions),
    )
    return {(r[0], r[1]) for r in rows}


async def log_delivered(
    pool: asyncpg.Pool,
    webhook_id: str,
    done: Sequence[tuple[RecordedEvent, float, int]],
    positions: dict[str, int],
) -> None:
    """Events delivered at the first attempt, with the cursor after the last, in one statement (so
    one round trip, atomic): (event, latency ms, response code) each."""
    await pool.execute(
        f"""
WITH d AS (
    INSERT INTO {S}.webhook_deliveries (webhook_id, event_id, service, position, event_type, kind, status,
                                        attempts, response_code, latency_ms)
    SELECT $1, e, s, p, t, 'dispatch', 'delivered', 1, c, l
      FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::int[], $7::float8[])
        AS x(e, s, p, t, c, l)
    ON CONFLICT (webhook_id, service, position) WHERE kind = 'dispatch' DO NOTHING
    RETURNING id, response_code, latency_ms
), a AS (
    INSERT INTO {S}.webhook_attempts (delivery_id, attempt, response_code, latency_ms, error)
    SELECT id, 1, response_code, latency_ms, '' FROM d
)
INSERT INTO {S}.webhook_cursors (webhook_id, positions, failures) VALUES ($1, $8::jsonb, 0)
ON CONFLICT (webhook_id) DO UPDATE SET positions = excluded.positions, failures = 0, updated_at = now()
""",
        webhook_id,
        [ev.event_id for ev, _, _ in done],
        [ev.log for ev, _, _ in done],
        [ev.position for ev, _, _ in done],
        [ev.type for ev, _, _ in done],
        [code for _, _, code in done],
        [ms for _, ms, _ in done],
        json.dumps(positions),
    )


async def record_attempt(
    pool: asyncpg.Pool,
    delivery_id: int,
    attempt: int,
    status: str,
    code: int,
    latency_ms: float,
    error: str,
    checkpoint: tuple[str, dict[str, int], int] | None = None,
) -> None:
    """One attempt, the delivery's new status and (when the event is finished with) the webhook's
    cursor and failure run, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f"INSERT INTO {S}.webhook_attempts (delivery_id, attempt, response_code, latency_ms, error) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            delivery_id,
            attempt,
            code,
            latency_ms,
            error,
        )
        await conn.execute(
            f"UPDATE {S}.webhook_deliveries SET status = $2, attempts = $3, response_code = $4, "
            "latency_ms = $5, last_error = $6, updated_at = now() WHERE id = $1",
            delivery_id,
            status,
            attempt,
            code,
            latency_ms,
            error,
        )
        if checkpoint is not None:
            await save_cursor(conn, *checkpoint)


async def delivery(pool: asyncpg.Pool, delivery_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow(f"SELECT * FROM {S}.webhook_deliveries WHERE id = $1", delivery_id)


async def deliveries(
    pool: asyncpg.Pool, webhook_id: str, status: str, limit: int, before_id: int
) -> tuple[list[asyncpg.Record], dict[int, list[asyncpg.Record]]]:
    """Newest first, with each one's attempts."""
    rows = await pool.fetch(
        f"SELECT * FROM {S}.webhook_deliveries WHERE ($1 = '' OR webhook_id = $1) "
        "AND ($2 = '' OR status = $2) AND ($3::bigint = 0 OR id < $3::bigint) ORDER BY id DESC LIMIT $4",
        webhook_id,
        status,
        before_id,
        limit,
    )
    attempts: dict[int, list[asyncpg.Record]] = {}
    if rows:
        for a in await pool.fetch(
            f"SELECT * FROM {S}.webhook_attempts WHERE delivery_id = ANY($1::bigint[]) "
            "ORDER BY delivery_id, attempt",
            [r["id"] for r in rows],
        ):
            attempts.setdefault(a["delivery_id"], []).append(a)
    return rows, attempts


def as_dict(r: asyncpg.Record) -> dict[str, Any]:
    return dict(r.items())
