"""History replay for subscriptions, shared between subscribers and cached as the bytes gRPC sends.

CI systems reconnect together (a deploy, a broker restart): a hundred subscribers replaying the same
history each read the log, decoded rows, converted and serialised the same events, and that cost
grew with the number of subscribers. Here a page of history is computed once per (filter, cursor,
log): read, filtered, cut into messages with their per-event cursors, serialised; every subscriber at
that cursor gets the same bytes. Concurrent subscribers wait on the one read in flight.

History is replayed log after log up to each log's head as the subscription starts; the live tail
(subscribe.py) continues from the cursor the replay ends at. Order within a log is the log's order;
across logs no order was ever promised.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass

from eventlog.records import RecordedEvent
from eventlog.sources import LogReader
from modelog._gen.audit.v1 import audit_pb2
from modelog._gen.common.v1 import event_pb2
from modelog.shared.audit.cursor import encode_cursor
from modelog_services.audit.subscribe import MAX_BATCH, Filter

PAGE = 5000
"""Events read per page (one SQL round trip for every subscriber at that cursor)."""
CACHE_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class Page:
    messages: tuple[bytes, ...]
    """Serialised SubscribeResponse messages (none when nothing in the page matched)."""
    end: int
    """The log position the page ends at: the subscriber's cursor for this log afterwards."""

    @property
    def size(self) -> int:
        return sum(len(m) for m in self.messages) + 100


PageKey = tuple[Filter, str, tuple[tuple[str, int], ...]]


def serialize(message: bytes | audit_pb2.SubscribeResponse) -> bytes:
    """Subscribe's response serializer: cached history is already bytes, live messages are protos."""
    return message if isinstance(message, bytes) else message.SerializeToString()


class HistoryCache:
    def __init__(
        self,
        reader: LogReader,
        proto: Callable[[RecordedEvent], event_pb2.Event],
        max_bytes: int = CACHE_BYTES,
    ) -> None:
        self.reader, self.proto, self.max_bytes = reader, proto, max_bytes
        self._pages: OrderedDict[PageKey, Page] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[PageKey, asyncio.Task[Page]] = {}
        self.reads = 0
        """Pages read from a log (the rest were shared): for tests and benches."""

    async def replay(
        self, cursor: MutableMapping[str, int], flt: Filter, heartbeat: Callable[[], bytes | None]
    ) -> AsyncIterator[bytes]:
        """Every matching event after `cursor` up to each log's current head; advances `cursor`.

        `heartbeat()` is asked after a page with nothing to send: it returns a message when one is
        due (a selective filter scanning a long history still tells its client where it is)."""
        for log in list(cursor):
            head = await self.reader.head(log)
            while cursor[log] < head:
                page = await self._page((flt, log, tuple(cursor.items())), cursor)
                for message in page.messages:
                    yield message
                if page.end <= cursor[log]:
                    break  # the log ends before its head said (cannot happen: positions are gap-free)
                cursor[log] = page.end
                if not page.messages:
                    beat = heartbeat()
                    if beat is not None:
                        yield beat

    async def _page(self, key: PageKey, cursor: MutableMapping[str, int]) -> Page:
        cached = self._pages.get(key)
        if cached is not None:
            self._pages.move_to_end(key)
            return cached
        task = self._inflight.get(key)
        if task is None:
            # A task of its own, not the first subscriber's: if that one disconnects, the others
            # waiting on this page still get it.
            task = self._inflight[key] = asyncio.create_task(self._fill(key, dict(cursor)))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(task)

    async def _fill(self, key: PageKey, cursor: dict[str, int]) -> Page:
        try:
            page = await self._read(key[0], key[1], cursor)
            self._keep(key, page)
            return page
        finally:
            self._inflight.pop(key, None)

    async def _read(self, flt: Filter, log: str, cursor: dict[str, int]) -> Page:
        events = await self.reader.read(log, cursor[log] + 1, PAGE)
        self.reads += 1
        if not events:
            return Page((), cursor[log])
        messages: list[bytes] = []
        batch: list[event_pb2.Event] = []
        cursors: list[str] = []
        for ev in events:
            cursor[log] = ev.position
            if not flt.match(ev):
                continue
            batch.append(self.proto(ev))
            cursors.append(encode_cursor(cursor))
            if len(batch) == MAX_BATCH:
                messages.append(_message(batch, cursors))
                batch, cursors = [], []
        if batch:
            messages.append(_message(batch, cursors))
        return Page(tuple(messages), events[-1].position)

    def _keep(self, key: PageKey, page: Page) -> None:
        if page.size > self.max_bytes // 4:
            return
        self._pages[key] = page
        self._bytes += page.size
        while self._bytes > self.max_bytes:
            _, old = self._pages.popitem(last=False)
            self._bytes -= old.size


def _message(events: list[event_pb2.Event], cursors: list[str]) -> bytes:
    batch = audit_pb2.EventBatch(events=events, cursors=cursors)
    return audit_pb2.SubscribeResponse(events=batch, cursor=cursors[-1]).SerializeToString()
