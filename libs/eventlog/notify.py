"""Wake-ups for tails: one LISTEN connection per log and process, shared by every tail, sets each
subscriber's flag on every commit (the appender NOTIFYs in the commit's transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg


class Notifications:
    def __init__(self, pool: asyncpg.Pool, channel: str) -> None:
        self.pool = pool
        self.channel = channel
        self._listener: asyncpg.Connection | None = None
        self._wakers: set[asyncio.Event] = set()
        self._lock = asyncio.Lock()

    async def subscribe(self) -> asyncio.Event:
        """A wake-up flag set on every commit to this log; give it back with unsubscribe()."""
        await self.ensure_listening()
        wake = asyncio.Event()
        self._wakers.add(wake)
        return wake

    def unsubscribe(self, wake: asyncio.Event) -> None:
        self._wakers.discard(wake)

    async def ensure_listening(self) -> None:
        # Locked: many tails starting at once would each take a pool connection and keep all but
        # one (found by the audit service's 40-subscriber test: the pool ran dry).
        async with self._lock:
            if self._listener is not None and not self._listener.is_closed():
                return
            if self._listener is not None:  # the server restarted: the old connection is dead
                with contextlib.suppress(Exception):
                    await self.pool.release(self._listener)
                self._listener = None
            conn = await self.pool.acquire()
            try:
                await conn.add_listener(self.channel, self._on_notify)
            except BaseException:
                # A tail cancelled here (its subscriber left) must not keep the connection: the pool
                # would wait for it forever on close.
                await self.pool.release(conn)
                raise
            self._listener = conn

    async def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await listener.remove_listener(self.channel, self._on_notify)
            await self.pool.release(listener)

    def _on_notify(self, *_: Any) -> None:
        for wake in self._wakers:
            wake.set()
