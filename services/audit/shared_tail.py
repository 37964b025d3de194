"""One follower per hosted log for all the webhook workers that are at its head.

Every worker follows the logs through subscribe.py; without this, N webhooks on one log meant N
reads of every commit (the profile of 5 webhooks at 500 events/s showed a quarter of the workers'
time in those reads). A SharedTail reads each new batch once, keeps the recent events in memory,
and serves every worker from there; a worker further behind reads its history from the store
itself until it reaches what is kept. Positions are gap-free, so a kept range is a plain list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from eventlog import EventStore, RecordedEvent


class SharedTail:
    """Wake-ups are one asyncio.Event per waiting reader, set by the follower; no Lock or Condition,
    whose cancellation races in Python 3.11 lost wake-ups and stalled every reader of a log."""

    def __init__(self, store: EventStore, keep: int = 20_000) -> None:
        self.store = store
        self.log = store.log
        self.keep = keep
        self.events: list[RecordedEvent] = []
        self.base = 0
        """Position of events[0]; the kept range is [base, next)."""
        self.next = 0
        self.error: BaseException | None = None
        self.ready = asyncio.Event()
        self._wakers: set[asyncio.Event] = set()
        self._task: asyncio.Task[None] | None = None

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self.ready = asyncio.Event()
            self._task = asyncio.create_task(self._follow(), name=f"webhooks-tail-{self.log}")

    def _wake(self) -> None:
        for wake in self._wakers:
            wake.set()

    async def _follow(self) -> None:
        try:
            head = (await self.store.head())[0]
            self.events, self.base, self.next, self.error = [], head + 1, head + 1, None
            self.ready.set()
            async for batch in self.store.tail_batches(head + 1, 1000):
                self.events.extend(batch)
                self.next = batch[-1].position + 1
                if len(self.events) > 2 * self.keep:
                    drop = len(self.events) - self.keep
                    del self.events[:drop]
                    self.base += drop
                self._wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every reader, which then restarts
            self.error = exc
            self.ready.set()
            self._wake()

    async def tail_batches(
        self, from_position: int = 1, batch: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Every event from `from_position` on, forever (as EventStore.tail_batches)."""
        self._start()
        await self.ready.wait()
        position = max(1, from_position)
        while True:
            if self.error is not None:
                raise self.error
            if self.base <= position < self.next:
                i = position - self.base
                chunk = self.events[i : i + batch]
                position = chunk[-1].position + 1
                yield chunk
            elif position < self.base:  # behind what is kept: its own read, up to the kept range
                chunk = await self.store.read_log(position, min(batch, self.base - position))
                if chunk:
                    position = chunk[-1].position + 1
                    yield chunk
            else:
                await self._wait_past(position)

    async def _wait_past(self, position: int) -> None:
        wake = asyncio.Event()
        self._wakers.add(wake)
        try:
            while self.next <= position and self.error is None:
                wake.clear()
                await wake.wait()
        finally:
            self._wakers.discard(wake)

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            while not task.done():  # not `await task`: that would swallow our own cancellation
                task.cancel()
                await asyncio.wait([task], timeout=1.0)
