"""The event store of one service log: append with optimistic concurrency, group commit, reads, tail.

Positions are gap-free and in commit order because every append transaction takes the log's
transaction-scoped advisory lock before reading the head, and allocates head + 1 under it; PostgreSQL
releases that lock only after the commit is visible, so the next writer always sees its predecessor.
A sequence would burn numbers on rollback and let readers see N+1 before N.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from opentelemetry import trace

from eventlog.errors import ConcurrencyConflict, IdempotencyKeyReused, InvalidArgument
from eventlog.events import Metadata
from eventlog.metrics import append_duration
from eventlog.records import AppendResult, NewEvent, RecordedEvent
from eventlog.schema import check_log_name
from modelog.shared.hashchain import (
    GENESIS,
    ChainRow,
    ChainVerifier,
    VerifyReport,
    canonical_bytes,
    link,
    micros,
)

InlineHook = Callable[[asyncpg.Connection, Sequence[RecordedEvent]], Awaitable[None]]
"""Runs inside the append transaction with the events it recorded (read-your-writes views)."""

tracer = trace.get_tracer("modelog.eventlog")
ANY_VERSION: int | None = None
MAX_EVENTS_PER_COMMAND = 10_000
MAX_STREAM_ID = 200

_COLUMNS = (
    "position, stream_id, stream_version, event_id::text, type, schema_version, payload::text, "
    "metadata::text, recorded_at, prev_hash, hash"
)


@dataclass
class _Command:
    stream_id: str
    expected_version: int | None
    events: Sequence[NewEvent]
    metadata_json: str
    idempotency_key: str | None
    future: asyncio.Future[AppendResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class _Planned:
    command: _Command
    rows: list[RecordedEvent]


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
        self.group_commit_max = max(1, group_commit_max)
        self.inline_hooks: list[InlineHook] = list(inline_hooks)
        self.channel = f"modelog_events_{self.log}"
        self._lock_key = int.from_bytes(
            hashlib.sha256(f"modelog.log.{self.log}".encode()).digest()[:8], "big", signed=True
        )
        self._queue: asyncio.Queue[_Command] | None = None
        self._listener: asyncpg.Connection | None = None
        self._wakers: set[asyncio.Event] = set()
        self._listener_lock = asyncio.Lock()
        self._worker: asyncio.Task[None] | None = None
        self.batches_committed = 0
        self.commands_committed = 0

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
        cmd = _Command(stream_id, expected_version, events, metadata.to_json(), metadata.idempotency_key)
        with tracer.start_as_current_span(
            "eventlog append",
            attributes={
                "modelog.log": self.log,
                "modelog.stream_id": stream_id,
                "modelog.events": len(events),
            },
        ):
            t0 = time.perf_counter()
            if self.group_commit_max == 1:
                await self._commit_batch([cmd])
            else:
                self._ensure_worker().put_nowait(cmd)
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
        cmds = [_Command(sid, ev, events, meta_json, metadata.idempotency_key) for sid, ev, events in appends]
        with tracer.start_as_current_span(
            "eventlog append_many",
            attributes={"modelog.log": self.log, "modelog.appends": len(cmds)},
        ):
            t0 = time.perf_counter()
            if self.group_commit_max == 1:
                for cmd in cmds:
                    await self._commit_batch([cmd])
            else:
                queue = self._ensure_worker()
                for cmd in cmds:
                    queue.put_nowait(cmd)
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

    def _ensure_worker(self) -> asyncio.Queue[_Command]:
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(
                self._run(self._queue), name=f"appender-{self.log}"
            )
        return self._queue

    async def _run(self, queue: asyncio.Queue[_Command]) -> None:
        # Commands that arrive while a transaction commits wait here and go together in the next one.
        while True:
            batch = [await queue.get()]
            while len(batch) < self.group_commit_max and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._commit_batch(batch)
            except BaseException as exc:
                for cmd in batch:
                    if not cmd.future.done():
                        cmd.future.set_exception(
                            exc if isinstance(exc, Exception) else RuntimeError(str(exc))
                        )
                if isinstance(exc, asyncio.CancelledError):
                    raise

    async def _commit_batch(self, batch: list[_Command]) -> None:
        try:
            results = await self._transaction(batch)
        except (asyncpg.PostgresError, ValueError) as exc:
            if len(batch) == 1:
                if not batch[0].future.done():  # a caller may have cancelled meanwhile
                    batch[0].future.set_exception(exc)
                return
            # One bad command (say, an inline projection rejecting it) must fail alone.
            for cmd in batch:
                await self._commit_batch([cmd])
            return
        for cmd, outcome in zip(batch, results, strict=True):
            if cmd.future.done():  # its caller gave up (cancelled); the others still get answers
                continue
            if isinstance(outcome, Exception):
                cmd.future.set_exception(outcome)
            else:
                cmd.future.set_result(outcome)
        self.batches_committed += 1
        self.commands_committed += len(batch)

    async def _transaction(self, batch: list[_Command]) -> list[AppendResult | Exception]:
        async with self.pool.acquire() as conn:
            # One round trip opens the transaction and takes the log's lock. The lock must be a
            # statement of its own: in READ COMMITTED every statement takes a fresh snapshot, so the
            # head read that follows sees every transaction that held the lock before us.
            await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({self._lock_key})")
            try:
                head, versions, seen = await self._read_state(conn, batch)
                outcomes, planned, planned_keys = self._plan(batch, head, versions, seen)
                if planned:
                    await self._insert(conn, planned, planned_keys)
                    for hook in self.inline_hooks:
                        await hook(conn, planned)
                    await conn.execute(f"NOTIFY {self.channel}, '{planned[-1].position}'; COMMIT")
                else:
                    await conn.execute("COMMIT")
            except BaseException:
                if not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
        return outcomes

    async def _read_state(
        self, conn: asyncpg.Connection, batch: list[_Command]
    ) -> tuple[asyncpg.Record | None, dict[str, int], dict[str, AppendResult]]:
        """Head, current stream versions and earlier results of idempotency keys, in one query."""
        s = self.log
        streams = sorted({c.stream_id for c in batch})
        keys = sorted({c.idempotency_key for c in batch if c.idempotency_key})
        rows = await conn.fetch(
            f"""
            SELECT 'h', NULL::text, position, NULL::bigint, NULL::bigint, NULL::text, hash, recorded_at
              FROM (SELECT position, hash, recorded_at FROM {s}.events ORDER BY position DESC LIMIT 1) h
            UNION ALL
            SELECT 'v', sid, (SELECT max(stream_version) FROM {s}.events WHERE stream_id = sid),
                   NULL, NULL, NULL, NULL, NULL
              FROM unnest($1::text[]) AS sid
            UNION ALL
            SELECT 'i', idempotency_key, min(position), max(position), max(stream_version), min(stream_id),
                   NULL, NULL
              FROM {s}.events WHERE idempotency_key = ANY($2::text[]) GROUP BY idempotency_key
            """,
            streams,
            keys,
        )
        head = None
        versions: dict[str, int] = {}
        seen: dict[str, AppendResult] = {}
        for r in rows:
            if r[0] == "h":
                head = r
            elif r[0] == "v":
                versions[r[1]] = r[2] or 0
            else:
                seen[r[1]] = AppendResult(r[5], r[2], r[3], r[4], replayed=True)
        return head, versions, seen

    def _plan(
        self,
        batch: list[_Command],
        head: asyncpg.Record | None,
        versions: dict[str, int],
        seen: dict[str, AppendResult],
    ) -> tuple[list[AppendResult | Exception], list[RecordedEvent], list[str | None]]:
        """Check each command against the state read under the lock and lay out its rows."""
        s = self.log
        position: int = head[2] if head else 0
        prev_hash: bytes = head[6] if head else GENESIS
        now = datetime.now(UTC)
        if head is not None and head[7] > now:
            now = head[7]  # recorded_at never goes backwards along the log
        now_us = micros(now)
        outcomes: list[AppendResult | Exception] = []
        planned: list[RecordedEvent] = []
        planned_keys: list[str | None] = []
        for cmd in batch:
            key = cmd.idempotency_key
            if key and key in seen:
                prior = seen[key]
                if prior.stream_id != cmd.stream_id:
                    outcomes.append(
                        IdempotencyKeyReused(
                            f"idempotency key {key!r} was already used for stream {prior.stream_id!r} "
                            f"in the {s} log; use a new key for a different command"
                        )
                    )
                else:
                    outcomes.append(prior)
                continue
            current = versions.get(cmd.stream_id, 0)
            if cmd.expected_version is not None and cmd.expected_version != current:
                outcomes.append(ConcurrencyConflict(s, cmd.stream_id, cmd.expected_version, current))
                continue
            if not cmd.events:
                outcomes.append(AppendResult(cmd.stream_id, position + 1, position, current))
                continue
            first = position + 1
            for ev in cmd.events:
                position += 1
                current += 1
                event_id = str(uuid.uuid4())
                digest = link(
                    prev_hash,
                    canonical_bytes(
                        s,
                        position,
                        cmd.stream_id,
                        current,
                        event_id,
                        ev.type,
                        ev.schema_version,
                        now_us,
                        ev.payload_json,
                        cmd.metadata_json,
                    ),
                )
                planned.append(
                    RecordedEvent(
                        s,
                        position,
                        cmd.stream_id,
                        current,
                        event_id,
                        ev.type,
                        ev.schema_version,
                        ev.payload_json,
                        cmd.metadata_json,
                        now,
                        prev_hash,
                        digest,
                    )
                )
                planned_keys.append(key)
                prev_hash = digest
            versions[cmd.stream_id] = current
            outcomes.append(AppendResult(cmd.stream_id, first, position, current))
            if key:
                seen[key] = AppendResult(cmd.stream_id, first, position, current, replayed=True)
        return outcomes, planned, planned_keys

    async def _insert(
        self, conn: asyncpg.Connection, rows: list[RecordedEvent], keys: list[str | None]
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self.log}.events (position, stream_id, stream_version, event_id, type, "
            "schema_version, payload, metadata, recorded_at, prev_hash, hash, idempotency_key) "
            "SELECT p, s, v, e::uuid, t, sv, pl::json, md::json, ra, ph, h, ik FROM unnest("
            "$1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::int[], $7::text[], "
            "$8::text[], $9::timestamptz[], $10::bytea[], $11::bytea[], $12::text[]) "
            "AS x(p, s, v, e, t, sv, pl, md, ra, ph, h, ik)",
            [r.position for r in rows],
            [r.stream_id for r in rows],
            [r.stream_version for r in rows],
            [r.event_id for r in rows],
            [r.type for r in rows],
            [r.schema_version for r in rows],
            [r.payload_json for r in rows],
            [r.metadata_json for r in rows],
            [r.recorded_at for r in rows],
            [r.prev_hash for r in rows],
            [r.hash for r in rows],
            keys,
        )

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await listener.remove_listener(self.channel, self._on_notify)
            await self.pool.release(listener)

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

    async def _subscribe(self) -> asyncio.Event:
        """A wake-up flag set on every commit to this log. All tails share one LISTEN connection."""
        await self._ensure_listener()
        wake = asyncio.Event()
        self._wakers.add(wake)
        return wake

    async def _ensure_listener(self) -> None:
        # Locked: many tails starting at once would each take a pool connection and keep all but
        # one (found by the audit service's 40-subscriber test: the pool ran dry).
        async with self._listener_lock:
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

    def _on_notify(self, *_: Any) -> None:
        for wake in self._wakers:
            wake.set()

    async def tail_batches(
        self, from_position: int = 1, batch: int = 1000, idle_poll_s: float = 5.0
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Batches of every event from `from_position` on, forever; sleeps on LISTEN/NOTIFY when caught up.

        The idle poll is only a safety net for a notification lost with a dropped connection.
        """
        wake = await self._subscribe()
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
                await self._ensure_listener()
        finally:
            self._wakers.discard(wake)

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
