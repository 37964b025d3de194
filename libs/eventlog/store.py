"""The event store of one service log: append with optimistic concurrency, reads, tail, verify.

Positions are gap-free and in commit order because every append transaction takes the log's
transaction-scoped advisory lock before reading the head, and allocates head + 1 under it; PostgreSQL
releases that lock only after the commit is visible, so the next writer always sees its predecessor.
A sequence would burn numbers on rollback and let readers see N+1 before N.

Appends are committed together by `groupcommit`, laid out by `appendplan`; tails sleep on `notify`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime

import asyncpg
from opentelemetry import trace

from eventlog.appendplan import Command
from eventlog.errors import InvalidArgument
from eventlog.events import Metadata
from eventlog.groupcommit import GroupCommit, InlineHook
from eventlog.metrics import append_duration
from eventlog.notify import Notifications
from eventlog.records import AppendResult, NewEvent, RecordedEvent
from eventlog.schema import check_log_name
from modelog.shared.hashchain import GENESIS, ChainRow, ChainVerifier, VerifyReport

__all__ = ["MAX_EVENTS_PER_COMMAND", "MAX_STREAM_ID", "EventStore", "InlineHook"]

tracer = trace.get_tracer("modelog.eventlog")
MAX_EVENTS_PER_COMMAND = 10_000
MAX_STREAM_ID = 200

_COLUMNS = (
    "position, stream_id, stream_version, event_id::text, type, schema_version, payload::text, "
    "metadata::text, recorded_at, prev_hash, hash"
)


class EventStore:
    """One log's store. Share one instance per log per process so group commit can coalesce."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        log: str,
        *,
        group_commit_max: int = 256,
        inline_hooks: Sequence[InlineHook] = (),
    ) -> None:
        self.pool = pool
        self.log = check_log_name(log)
        self.inline_hooks: list[InlineHook] = list(inline_hooks)
        lock_key = int.from_bytes(
            hashlib.sha256(f"modelog.log.{self.log}".encode()).digest()[:8], "big", signed=True
        )
        self._commits = GroupCommit(pool, self.log, lock_key, self.inline_hooks, group_commit_max)
        self.channel = self._commits.channel
        self._notifications = Notifications(pool, self.channel)

    @property
    def batches_committed(self) -> int:
        return self._commits.batches_committed

    @property
    def commands_committed(self) -> int:
        return self._commits.commands_committed

    # ------------------------------------------------------------------ append

    async def append(
        self,
        stream_id: str,
        expected_version: int | None,
        events: Sequence[NewEvent],
        metadata: Metadata,
    ) -> AppendResult:
        """Append `events` to `stream_id` if it is at `expected_version` (None: any version).

        With an idempotency key in `metadata`, a retry returns the first result and appends nothing.
        """
        self._validate(stream_id, expected_version, events)
        cmd = Command(stream_id, expected_version, events, metadata.to_json(), metadata.idempotency_key)
        with tracer.start_as_current_span(
            "eventlog append",
            attributes={
                "modelog.log": self.log,
                "modelog.stream_id": stream_id,
                "modelog.events": len(events),
            },
        ):
            t0 = time.perf_counter()
            await self._commits.submit([cmd])
            result = await cmd.future
            append_duration.record((time.perf_counter() - t0) * 1000, {"log": self.log})
            return result

    async def append_many(
        self, appends: Sequence[tuple[str, int | None, Sequence[NewEvent]]], metadata: Metadata
    ) -> list[AppendResult]:
        """Append to several streams, each as append() would, under one metadata and queued at once
        so group commit takes them in as few transactions as it can. For bulk records (a BlobStored
        per blob of a 10,000-file upload): one append() each cost a span, a timer and a task switch
        on the event loop per row, more than the rows themselves. Each append succeeds or fails on
        its own; the first failure is raised once all have finished."""
        if metadata.idempotency_key and len(appends) > 1:
            raise InvalidArgument.field(
                "metadata.idempotency_key", "one key cannot cover appends to several streams"
            )
        for stream_id, expected_version, events in appends:
            self._validate(stream_id, expected_version, events)
        if not appends:
            return []
        meta_json = metadata.to_json()
        cmds = [Command(sid, ev, events, meta_json, metadata.idempotency_key) for sid, ev, events in appends]
        with tracer.start_as_current_span(
            "eventlog append_many",
            attributes={"modelog.log": self.log, "modelog.appends": len(cmds)},
        ):
            t0 = time.perf_counter()
            await self._commits.submit(cmds)
            results = await asyncio.gather(*(c.future for c in cmds), return_exceptions=True)
            append_duration.record((time.perf_counter() - t0) * 1000, {"log": self.log})
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [r for r in results if isinstance(r, AppendResult)]

    def _validate(self, stream_id: str, expected_version: int | None, events: Sequence[NewEvent]) -> None:
        if not stream_id or len(stream_id) > MAX_STREAM_ID or not stream_id.isprintable():
            raise InvalidArgument.field("stream_id", f"must be 1..{MAX_STREAM_ID} printable characters")
        if expected_version is not None and expected_version < 0:
            raise InvalidArgument.field("expected_version", "must be >= 0 (0: the stream must not exist)")
        if len(events) > MAX_EVENTS_PER_COMMAND:
            raise InvalidArgument.field("events", f"at most {MAX_EVENTS_PER_COMMAND} events per command")

    async def close(self) -> None:
        await self._commits.close()
        await self._notifications.close()

    # ------------------------------------------------------------------ reads

    def _record(self, r: asyncpg.Record) -> RecordedEvent:
        return RecordedEvent(self.log, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM {self.log}.events WHERE stream_id = $1 AND stream_version >= $2 "
            "ORDER BY stream_version",
            stream_id,
            from_version,
        )
        return [self._record(r) for r in rows]

    async def read_stream_skipping(
        self, stream_id: str, from_version: int, skip_types: Collection[str]
    ) -> tuple[list[RecordedEvent], int]:
        """A stream's events from `from_version` without those of `skip_types`, and the stream's version
        counting them all, in one round trip: the reader never decodes what it has no use for."""
        rows = await self.pool.fetch(
            f"SELECT v.head, e.* FROM (SELECT max(stream_version) AS head FROM {self.log}.events "
            "WHERE stream_id = $1) v LEFT JOIN LATERAL ("
            f"SELECT {_COLUMNS} FROM {self.log}.events WHERE stream_id = $1 AND stream_version >= $2 "
            "AND type <> ALL($3::text[])) e ON true ORDER BY e.stream_version",
            stream_id,
            from_version,
            list(skip_types),
        )
        version = int(rows[0][0] or 0) if rows else 0
        events = [RecordedEvent(self.log, *tuple(r)[1:]) for r in rows if r[1] is not None]
        return events, version

    async def read_log(
        self, from_position: int = 1, limit: int = 1000, conn: asyncpg.Connection | None = None
    ) -> list[RecordedEvent]:
        """Events with position >= from_position, in order."""
        query = f"SELECT {_COLUMNS} FROM {self.log}.events WHERE position >= $1 ORDER BY position LIMIT $2"
        rows = await (conn or self.pool).fetch(query, max(1, from_position), limit)
        return [self._record(r) for r in rows]

    async def head(self) -> tuple[int, bytes, datetime | None]:
        row = await self.pool.fetchrow(
            f"SELECT position, hash, recorded_at FROM {self.log}.events ORDER BY position DESC LIMIT 1"
        )
        return (row[0], row[1], row[2]) if row else (0, GENESIS, None)

    async def find_idempotent(self, key: str) -> AppendResult | None:
        """The result of the command that already used this idempotency key, if any."""
        row = await self.pool.fetchrow(
            "SELECT min(stream_id), min(position), max(position), max(stream_version) "
            f"FROM {self.log}.events WHERE idempotency_key = $1",
            key,
        )
        if row is None or row[1] is None:
            return None
        return AppendResult(row[0], row[1], row[2], row[3], replayed=True)

    async def stream_version(self, stream_id: str) -> int:
        v = await self.pool.fetchval(
            f"SELECT max(stream_version) FROM {self.log}.events WHERE stream_id = $1", stream_id
        )
        return int(v or 0)

    async def tail_batches(
        self, from_position: int = 1, batch: int = 1000, idle_poll_s: float = 5.0
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Batches of every event from `from_position` on, forever; sleeps on LISTEN/NOTIFY when caught up.

        The idle poll is only a safety net for a notification lost with a dropped connection.
        """
        wake = await self._notifications.subscribe()
        try:
            next_pos = max(1, from_position)
            while True:
                wake.clear()  # cleared before reading, so a commit during the read still wakes us
                events = await self.read_log(next_pos, batch)
                if events:
                    yield events
                    next_pos = events[-1].position + 1
                    continue
                with contextlib.suppress(TimeoutError):
                    # Not wait_for: in Python 3.11 it drops a cancellation that lands as the wait
                    # completes, and a tail cancelled that way never stops.
                    async with asyncio.timeout(idle_poll_s):
                        await wake.wait()
                    continue
                # Quiet for a whole poll: make sure we are still listening (PostgreSQL may have restarted).
                await self._notifications.ensure_listening()
        finally:
            self._notifications.unsubscribe(wake)

    async def tail(
        self, from_position: int = 1, batch: int = 1000, idle_poll_s: float = 5.0
    ) -> AsyncIterator[RecordedEvent]:
        """Every event from `from_position` on, one at a time (see tail_batches)."""
        async for events in self.tail_batches(from_position, batch, idle_poll_s):
            for ev in events:
                yield ev

    async def verify(self, batch: int = 20_000) -> VerifyReport:
        """Walk the whole log, recomputing every hash; name the first position that does not match.

        Rows come straight from SQL in ChainRow's field order (time as exact integer microseconds),
        skipping datetime and record objects: verification speed is bound by this loop.
        """
        verifier = ChainVerifier()
        log = self.log
        query = (
            "SELECT position, stream_id, stream_version, event_id::text, type, schema_version, "
            "(extract(epoch FROM recorded_at) * 1000000)::bigint, payload::text, metadata::text, "
            f"prev_hash, hash FROM {log}.events WHERE position >= $1 ORDER BY position LIMIT $2"
        )
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            cursor_from = 1
            while True:
                rows = await conn.fetch(query, cursor_from, batch)
                if not rows:
                    break
                if not verifier.feed(ChainRow(log, *r) for r in rows):
                    break
                cursor_from = rows[-1][0] + 1
        return verifier.report
