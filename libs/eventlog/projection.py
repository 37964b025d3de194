"""Read models built from events, with exactly-once effect.

A projection declares its source logs, the event types it handles and its tables. Every write
happens in one transaction with the checkpoint (projection, source log, position): a duplicate is
skipped, and because events must arrive as position N+1 after N, a gap can never be skipped. The
same declaration serves three drivers: inline (inside the append transaction), the Kafka runner
(runner.py) and rebuild (rebuild.py).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import asyncpg

from eventlog.records import RecordedEvent
from eventlog.schema import check_log_name
from eventlog.store import EventStore, InlineHook

SHADOW = "__shadow"


def checkpoint_ddl(schema: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {schema}.projection_checkpoints (
    projection text   NOT NULL,
    source     text   NOT NULL,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, source)
);
"""


@dataclass(frozen=True)
class Tables:
    """Logical table name -> physical, so one projection writes its live or its shadow tables."""

    schema: str
    suffix: str = ""

    def __getattr__(self, name: str) -> str:
        return f"{self.schema}.{name}{self.suffix}"


class Projection(abc.ABC):
    name: ClassVar[str]
    schema: ClassVar[str]
    sources: ClassVar[tuple[str, ...]]
    tables: ClassVar[tuple[str, ...]]
    handles: ClassVar[frozenset[str] | None] = None
    """Event types this projection reads; None means every type."""

    @abc.abstractmethod
    def ddl(self, t: Tables) -> str:
        """CREATE TABLE statements for the tables in `t` (indexes unnamed, so shadows never clash)."""

    @abc.abstractmethod
    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        """Write the effect of `events` (all handled, in log order, one source log)."""

    def upgrade(self, t: Tables) -> str:
        """Idempotent DDL that brings tables an older release made up to date (`ADD COLUMN IF NOT
        EXISTS ...`); run when the tables exist, so a new column never needs a rebuild."""
        return ""

    def wants(self, ev: RecordedEvent) -> bool:
        return self.handles is None or ev.type in self.handles

    def checkpoint_name(self, t: Tables) -> str:
        return self.name + t.suffix

    async def ensure(self, conn: asyncpg.Connection, t: Tables | None = None) -> None:
        t = t or Tables(self.schema)
        check_log_name(self.schema)
        await conn.execute(checkpoint_ddl(self.schema))
        first = getattr(t, self.tables[0])
        if await conn.fetchval("SELECT to_regclass($1)", first) is None:
            await conn.execute(self.ddl(t))
        elif upgrade := self.upgrade(t):
            await conn.execute(upgrade)


async def checkpoint(
    conn: asyncpg.Connection, projection: Projection, source: str, t: Tables, *, for_update: bool = False
) -> int:
    value = await conn.fetchval(
        f"SELECT position FROM {projection.schema}.projection_checkpoints "
        "WHERE projection = $1 AND source = $2" + (" FOR UPDATE" if for_update else ""),
        projection.checkpoint_name(t),
        source,
    )
    return int(value or 0)


async def apply_in_order(
    conn: asyncpg.Connection, projection: Projection, source: str, events: Sequence[RecordedEvent], t: Tables
) -> int:
    """Apply the events that continue the checkpoint, inside the caller's transaction.

    Returns the new checkpoint. Events at or below it are duplicates and skipped; the first event
    that does not continue it stops the batch (the caller heals the gap and comes back).
    """
    # Row-locking the checkpoint makes concurrent appliers of one projection take turns.
    await conn.execute(
        f"INSERT INTO {projection.schema}.projection_checkpoints (projection, source, position) "
        "VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
        projection.checkpoint_name(t),
        source,
    )
    current = await checkpoint(conn, projection, source, t, for_update=True)
    run: list[RecordedEvent] = []
    for ev in events:
        if ev.position <= current + len(run):
            continue  # a duplicate: already applied, or twice in this batch
        if ev.position != current + len(run) + 1:
            break
        run.append(ev)
    if not run:
        return current
    wanted = [ev for ev in run if projection.wants(ev)]
    if wanted:
        await projection.apply(conn, wanted, t)
    new = run[-1].position
    await conn.execute(
        f"UPDATE {projection.schema}.projection_checkpoints SET position = $3, updated_at = now() "
        "WHERE projection = $1 AND source = $2",
        projection.checkpoint_name(t),
        source,
        new,
    )
    return new


def inline(projection: Projection, store: EventStore) -> InlineHook:
    """Run a projection inside its own service's append transaction (read-your-writes).

    If the projection is behind the log (added later, or rebuilt), it first catches up from the log
    inside the same transaction, so inline views never skip an event either.
    """
    live = Tables(projection.schema)

    async def hook(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        done = await apply_in_order(conn, projection, store.log, events, live)
        while done < events[-1].position:
            missing = await store.read_log(done + 1, 5000, conn=conn)
            done = await apply_in_order(conn, projection, store.log, missing, live)

    return hook
