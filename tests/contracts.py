"""Checks written once and run against every implementation: each projection's rebuild equals its
live view, whichever service it belongs to; each log reader reads every position once, in order."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import asyncpg

from eventlog import EventStore, RecordedEvent
from eventlog.projection import SHADOW, Projection, Tables
from eventlog.rebuild import RebuildReport, rebuild
from eventlog.sources import LogReader, StoreReader


async def rows(pool: asyncpg.Pool, table: str) -> list[str]:
    """A table's rows as text, sorted: equal tables give equal lists whatever their keys."""
    return [r[0] for r in await pool.fetch(f"SELECT t::text FROM {table} t ORDER BY 1")]


async def assert_rebuild_equals_live(
    pool: asyncpg.Pool,
    projection: Projection,
    stores: Mapping[str, EventStore],
    *,
    swap: bool = False,
    may_be_empty: Collection[str] = (),
) -> RebuildReport:
    """Rebuild `projection` from position zero and compare it, table by table and row for row, with
    the live view the service kept while it ran: into shadow tables, or (`swap`) swapped in over the
    live ones and compared with what they held before. A table left empty would prove nothing, so it
    fails unless named in `may_be_empty`."""
    live, shadow = Tables(projection.schema), Tables(projection.schema, SHADOW)
    before = {t: await rows(pool, getattr(live, t)) for t in projection.tables} if swap else {}
    report = await rebuild(pool, projection, StoreReader(stores), swap=swap)
    nothing_needed = set(projection.tables) <= set(may_be_empty)  # a log nobody wrote to is fine then
    assert report.events > 0 or nothing_needed, f"{projection.name}: the rebuild read no events"
    assert report.swapped == swap
    for table in projection.tables:
        kept = before[table] if swap else await rows(pool, getattr(live, table))
        assert kept or table in may_be_empty, f"{projection.schema}.{table} is empty: proves nothing"
        rebuilt = await rows(pool, getattr(live if swap else shadow, table))
        assert rebuilt == kept, f"{projection.schema}.{table} differs after a rebuild"
    return report


async def assert_reads_the_log_exactly(reader: LogReader, store: EventStore, *, page: int = 7) -> None:
    """What every log reader promises its followers (projections, the relay's healing, replay): the
    head of the store, and from any position the events that follow in order, each position once,
    `limit` at most per read, nothing past the head."""
    head = (await store.head())[0]
    assert head > page * 2, "the log is too short for the contract to say anything"
    assert await reader.head(store.log) == head
    seen: list[int] = []
    position = 1
    while True:
        got = await reader.read(store.log, position, page)
        assert len(got) <= page
        if not got:
            break
        assert [e.position for e in got] == list(range(position, position + len(got)))
        seen += [e.position for e in got]
        position = got[-1].position + 1
    assert seen == list(range(1, head + 1))
    assert await reader.read(store.log, head + 1, page) == []
    middle = await reader.read(store.log, head // 2, 3)
    direct = await store.read_log(head // 2, 3)
    assert [(e.position, e.stream_id, e.hash, e.payload_json) for e in middle] == [
        (e.position, e.stream_id, e.hash, e.payload_json) for e in direct
    ]


async def assert_streams_read_exactly(store: EventStore) -> None:
    """Stream reads (what the command path folds) agree with the log: each stream's events in stream
    order, versions 1..n without a gap, from any version, and skipping types keeps the version."""
    log = await store.read_log(1, 100_000)
    streams: dict[str, list[RecordedEvent]] = {}
    for e in log:
        streams.setdefault(e.stream_id, []).append(e)
    assert len(streams) > 1, "one stream would not show that streams are kept apart"
    for stream_id, expected in streams.items():
        got = await store.read_stream(stream_id)
        assert [e.position for e in got] == [e.position for e in expected]
        assert [e.stream_version for e in got] == list(range(1, len(expected) + 1))
        middle = len(expected) // 2 + 1
        assert [e.position for e in await store.read_stream(stream_id, middle)] == [
            e.position for e in expected[middle - 1 :]
        ]
        kinds = {e.type for e in expected}
        kept, head = await store.read_stream_skipping(stream_id, 1, kinds)
        assert (kept, head) == ([], len(expected))
