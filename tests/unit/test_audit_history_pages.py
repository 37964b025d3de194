"""History replay for subscriptions: subscribers at one cursor share each page (one read, one set of
bytes), every event arrives once in log order with a cursor that resumes right after it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from eventlog import RecordedEvent
from modelog._gen.audit.v1 import audit_pb2
from modelog.shared.audit.cursor import decode_cursor
from modelog_platform.eventlog_api import to_proto
from modelog_services.audit import history
from modelog_services.audit.history import HistoryCache
from modelog_services.audit.subscribe import MAX_BATCH, Filter

pytestmark = pytest.mark.asyncio


def event(log: str, position: int) -> RecordedEvent:
    kind = "Wanted" if position % 3 == 0 else "Other"
    return RecordedEvent(
        log, position, f"s-{position % 5}", position, f"{position:032x}", kind, 1, "{}", "{}",
        datetime(2026, 1, 1, tzinfo=UTC), b"\0" * 32, b"\1" * 32,
    )  # fmt: skip


class Reader:
    """A log of `n` events per log; counts reads and yields to the loop like a database would."""

    def __init__(self, n: dict[str, int]) -> None:
        self.n, self.reads = n, 0

    async def read(self, log: str, from_position: int, limit: int) -> list[RecordedEvent]:
        self.reads += 1
        await asyncio.sleep(0.001)
        last = min(self.n[log], from_position + limit - 1)
        return [event(log, p) for p in range(from_position, last + 1)]

    async def head(self, log: str) -> int:
        return self.n[log]


async def collect(
    cache: HistoryCache, cursor: dict[str, int], flt: Filter
) -> list[audit_pb2.SubscribeResponse]:
    out = []
    async for data in cache.replay(cursor, flt, lambda: None):
        out.append(audit_pb2.SubscribeResponse.FromString(data))
    return out


async def test_concurrent_subscribers_at_one_cursor_share_every_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "PAGE", 1000)
    reader = Reader({"tracking": 4500, "registry": 700})
    cache = HistoryCache(reader, to_proto)
    cursors = [{"tracking": 0, "registry": 0} for _ in range(20)]
    results = await asyncio.gather(*(collect(cache, c, Filter()) for c in cursors))
    assert reader.reads == 5 + 1  # tracking in 5 pages, registry in 1: once, whatever the subscribers
    first = [(e.service, e.position) for m in results[0] for e in m.events.events]
    assert first == [("tracking", p) for p in range(1, 4501)] + [("registry", p) for p in range(1, 701)]
    assert all(r == results[0] for r in results)
    assert all(c == {"tracking": 4500, "registry": 700} for c in cursors)
    assert max(len(m.events.events) for m in results[0]) == MAX_BATCH

    m = results[0][3]
    for ev, cursor in zip(m.events.events, m.events.cursors, strict=True):
        assert decode_cursor(cursor)["tracking"] == ev.position  # resumes right after this event

    resumed = {"tracking": 2000, "registry": 0}  # a cursor the first subscribers passed: shared too
    rest = await collect(cache, resumed, Filter())
    assert next(e.position for m in rest for e in m.events.events) == 2001 and reader.reads == 6
    elsewhere = await collect(cache, {"tracking": 2500, "registry": 0}, Filter())
    # Its own two tracking pages; once at tracking's head, its registry page is the others' again.
    assert next(e.position for m in elsewhere for e in m.events.events) == 2501 and reader.reads == 6 + 2


async def test_a_selective_filter_scanning_history_still_sends_heartbeats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(history, "PAGE", 100)
    cache = HistoryCache(Reader({"tracking": 1000}), to_proto)
    beats = 0

    def due() -> bytes:
        nonlocal beats
        beats += 1
        return audit_pb2.SubscribeResponse(cursor="beat").SerializeToString()

    got = [m async for m in cache.replay({"tracking": 0}, Filter(types=frozenset({"Nothing"})), due)]
    assert beats == 10 and len(got) == 10
    wanted = await collect(cache, {"tracking": 0}, Filter(types=frozenset({"tracking.Wanted"})))
    assert [e.position for m in wanted for e in m.events.events] == list(range(3, 1001, 3))


async def test_a_failed_read_reaches_every_waiting_subscriber_and_is_not_cached() -> None:
    class Failing(Reader):
        async def read(self, log: str, from_position: int, limit: int) -> list[RecordedEvent]:
            self.reads += 1
            await asyncio.sleep(0.001)
            raise ConnectionError("database went away")

    reader = Failing({"tracking": 10})
    cache = HistoryCache(reader, to_proto)
    outcomes = await asyncio.gather(
        *(collect(cache, {"tracking": 0}, Filter()) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, ConnectionError) for o in outcomes) and reader.reads == 1
    with pytest.raises(ConnectionError):
        await collect(cache, {"tracking": 0}, Filter())
    assert reader.reads == 2
