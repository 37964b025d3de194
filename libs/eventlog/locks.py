"""In-process turn-taking per stream, in front of optimistic concurrency."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class StreamLocks:
    """One asyncio lock per stream while anyone holds or awaits it.

    Concurrent commands on one stream would all read the same version and all but one would conflict,
    again and again; queueing them in the process lets each append at the first try. Other processes
    are still kept honest by the expected version.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, stream_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(stream_id, (asyncio.Lock(), 0))
        self._locks[stream_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[stream_id]
            if users == 1:
                del self._locks[stream_id]
            else:
                self._locks[stream_id] = (lock, users - 1)
