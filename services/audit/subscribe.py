"""Subscriptions: history from a cursor up to the head, then live events, merged across logs.

A cursor is the last position seen of each log, serialised as an opaque string; every message
carries the cursor after it, so a client that resumes with it gets exactly what it has not seen.
Back-pressure: each log's tail hands batches through a small bounded queue, and the gRPC write is
awaited, so a slow client slows the reads instead of losing events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from eventlog.records import RecordedEvent
from eventlog.sources import LogReader
from modelog.shared.audit.cursor import encode_cursor

_QUEUE_BATCHES = 4
_POLL_S = 0.5
MAX_BATCH = 500


@dataclass(frozen=True)
class Filter:
    services: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    """`service.Type` or bare `Type`."""
    streams: tuple[str, ...] = ()
    """Exact ids, or prefixes ending in `*`."""

    def match(self, ev: RecordedEvent) -> bool:
        if self.services and ev.log not in self.services:
            return False
        if self.types and ev.type not in self.types and f"{ev.log}.{ev.type}" not in self.types:
            return False
        if self.streams:
            sid = ev.stream_id
            return any(sid.startswith(s[:-1]) if s.endswith("*") else sid == s for s in self.streams)
        return True


Batch = tuple[str, list[RecordedEvent]] | BaseException


class Tail(Protocol):
    """A log hosted in this process, followed batch by batch (EventStore, or the webhook dispatcher's
    SharedTail that serves many followers from one read)."""

    log: str

    def tail_batches(self, from_position: int, batch: int) -> AsyncIterator[list[RecordedEvent]]: ...


_listen_locks: dict[int, asyncio.Lock] = {}


async def _pump_store(store: Tail, after: int, out: asyncio.Queue[Batch]) -> None:
    async for events in store.tail_batches(after + 1, 1000):
        await out.put((store.log, events))


async def _pump_reader(reader: LogReader, log: str, after: int, out: asyncio.Queue[Batch]) -> None:
    position = after + 1
    while True:
        events = await reader.read(log, position, 1000)
        if events:
            await out.put((log, events))
            position = events[-1].position + 1
        else:
            await asyncio.sleep(_POLL_S)


async def _guard(job: Awaitable[None], out: asyncio.Queue[Batch]) -> None:
    try:
        await job
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the subscriber must hear of any failure, not hang
        await out.put(exc)


async def subscribe(
    stores: Mapping[str, Tail],
    reader: LogReader,
    logs: Sequence[str],
    start: Mapping[str, int],
    flt: Filter,
    heartbeat_s: float,
) -> AsyncIterator[tuple[list[RecordedEvent], list[str], str]]:
    """(matching events, the cursor after each, the cursor after all), in batches of at most
    MAX_BATCH; a heartbeat is an empty batch, sent after `heartbeat_s` without one."""
    cursor = {log: start.get(log, 0) for log in logs if not flt.services or log in flt.services}
    queue: asyncio.Queue[Batch] = asyncio.Queue(_QUEUE_BATCHES * max(1, len(cursor)))
    tasks = []
    for log, after in cursor.items():
        store = stores.get(log)
        job = (
            _pump_store(store, after, queue) if store is not None else _pump_reader(reader, log, after, queue)
        )
        tasks.append(asyncio.create_task(_guard(job, queue), name=f"subscribe-{log}"))
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    try:
        while True:
            try:
                # Not wait_for: in Python 3.11 it drops a cancellation that lands as get() completes
                # (found when stopped webhook workers kept running).
                async with asyncio.timeout(max(0.0, last_sent + heartbeat_s - loop.time())):
                    item = await queue.get()
            except TimeoutError:
                yield [], [], encode_cursor(cursor)
                last_sent = loop.time()
                continue
            if isinstance(item, BaseException):
                raise item
            log, events = item
            matched: list[RecordedEvent] = []
            cursors: list[str] = []
            for ev in events:
                if ev.position <= cursor[log]:
                    continue  # a re-read after a reconnect of the listener
                cursor[log] = ev.position
                if flt.match(ev):
                    matched.append(ev)
                    cursors.append(encode_cursor(cursor))
                    if len(matched) == MAX_BATCH:
                        yield matched, cursors, cursors[-1]
                        matched, cursors = [], []
            if matched:
                yield matched, cursors, cursors[-1]
                last_sent = loop.time()
            elif loop.time() - last_sent >= heartbeat_s:  # busy logs, nothing matching: still say so
                yield [], [], encode_cursor(cursor)
                last_sent = loop.time()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
