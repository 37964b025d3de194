"""Rebuild a projection from position 0 into shadow tables while the live ones keep serving, then swap.

The swap transaction takes the live checkpoint rows' locks (so live appliers wait), catches the shadow
up to the current heads, renames shadow to live and moves the checkpoints: readers see the old view or
the new one, never a half-built one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

from eventlog.projection import SHADOW, Projection, Tables, apply_in_order
from eventlog.sources import LogReader

PAGE = 5000


@dataclass
class RebuildReport:
    projection: str
    events: int
    seconds: float
    swapped: bool


async def rebuild(
    pool: asyncpg.Pool, projection: Projection, reader: LogReader, *, swap: bool = True
) -> RebuildReport:
    t0 = time.perf_counter()
    shadow = Tables(projection.schema, SHADOW)
    live = Tables(projection.schema)
    total = 0
    async with pool.acquire() as conn:
        await projection.ensure(conn)
        async with conn.transaction():
            for name in projection.tables:
                await conn.execute(f"DROP TABLE IF EXISTS {getattr(shadow, name)}")
            await conn.execute(
                f"DELETE FROM {projection.schema}.projection_checkpoints WHERE projection = $1",
                projection.checkpoint_name(shadow),
            )
            await conn.execute(projection.ddl(shadow))
        # Bulk of the work: one transaction per page, the live view untouched.
        positions = {s: 0 for s in projection.sources}
        for source in projection.sources:
            while True:
                async with conn.transaction():
                    done, applied = await _page(conn, projection, reader, source, shadow, positions[source])
                total += applied
                if done == positions[source]:
                    break
                positions[source] = done
        if not swap:
            return RebuildReport(projection.name, total, time.perf_counter() - t0, False)
        async with conn.transaction():
            await conn.execute(
                f"SELECT 1 FROM {projection.schema}.projection_checkpoints WHERE projection = $1 FOR UPDATE",
                projection.name,
            )
            for source in projection.sources:
                while True:
                    done, applied = await _page(conn, projection, reader, source, shadow, positions[source])
                    total += applied
                    if done == positions[source]:
                        break
                    positions[source] = done
            for name in projection.tables:
                live_name, shadow_name = getattr(live, name), getattr(shadow, name)
                bare = live_name.split(".", 1)[1]
                await conn.execute(f"ALTER TABLE {live_name} RENAME TO {bare}__old")
                await conn.execute(f"ALTER TABLE {shadow_name} RENAME TO {bare}")
                await conn.execute(f"DROP TABLE {projection.schema}.{bare}__old")
            # Update the live rows in place (not delete + insert): a live applier waiting on their lock
            # then re-reads the new position instead of finding no row.
            cp = f"{projection.schema}.projection_checkpoints"
            await conn.execute(
                f"INSERT INTO {cp} (projection, source, position) SELECT $1, source, position FROM {cp} "
                "WHERE projection = $2 ON CONFLICT (projection, source) "
                "DO UPDATE SET position = excluded.position, updated_at = now()",
                projection.name,
                projection.checkpoint_name(shadow),
            )
            await conn.execute(f"DELETE FROM {cp} WHERE projection = $1", projection.checkpoint_name(shadow))
    return RebuildReport(projection.name, total, time.perf_counter() - t0, True)


async def _page(
    conn: asyncpg.Connection,
    projection: Projection,
    reader: LogReader,
    source: str,
    shadow: Tables,
    start: int,
) -> tuple[int, int]:
    events = await reader.read(source, start + 1, PAGE)
    if not events:
        return start, 0
    new = await apply_in_order(conn, projection, source, events, shadow)
    return new, new - start
