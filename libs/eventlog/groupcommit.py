"""Group commit: appends that arrive while a transaction commits wait in a queue and go together in
the next one, under the log's transaction-scoped advisory lock (which is what keeps positions gap-free
and in commit order, see `store`). One bad command in a batch fails alone: the batch is retried one
command at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from eventlog.appendplan import Command, plan
from eventlog.records import AppendResult, RecordedEvent

InlineHook = Callable[[asyncpg.Connection, Sequence[RecordedEvent]], Awaitable[None]]
"""Runs inside the append transaction with the events it recorded (read-your-writes views)."""


class GroupCommit:
    """Commits one log's appends, `max_batch` commands per transaction at most (1: no queue, each
    append commits in its caller's task)."""

    def __init__(
        self, pool: asyncpg.Pool, log: str, lock_key: int, inline_hooks: list[InlineHook], max_batch: int
    ) -> None:
        self.pool = pool
        self.log = log
        self.lock_key = lock_key
        self.channel = f"modelog_events_{log}"
        self.inline_hooks = inline_hooks  # the store's list: hooks added later take part
        self.max_batch = max(1, max_batch)
        self._queue: asyncio.Queue[Command] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches_committed = 0
        self.commands_committed = 0

    async def submit(self, cmds: Sequence[Command]) -> None:
        """Start committing `cmds`; each one's future gets its result."""
        if self.max_batch == 1:
            for cmd in cmds:
                await self._commit_batch([cmd])
            return
        queue = self._ensure_worker()
        for cmd in cmds:
            queue.put_nowait(cmd)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def _ensure_worker(self) -> asyncio.Queue[Command]:
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(
                self._run(self._queue), name=f"appender-{self.log}"
            )
        return self._queue

    async def _run(self, queue: asyncio.Queue[Command]) -> None:
        # Commands that arrive while a transaction commits wait here and go together in the next one.
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
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

    async def _commit_batch(self, batch: list[Command]) -> None:
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

    async def _transaction(self, batch: list[Command]) -> list[AppendResult | Exception]:
        async with self.pool.acquire() as conn:
            # One round trip opens the transaction and takes the log's lock. The lock must be a
            # statement of its own: in READ COMMITTED every statement takes a fresh snapshot, so the
            # head read that follows sees every transaction that held the lock before us.
            await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({self.lock_key})")
            try:
                head, versions, seen = await self._read_state(conn, batch)
                outcomes, planned, planned_keys = plan(self.log, batch, head, versions, seen)
                if planned:
                    await self._insert(conn, planned, planned_keys)
                    for hook in self.inline_hooks:
                        await hook(conn, planned)
                    await conn.execute(f"NOTIFY {self.channel}, '{planned[-1].position}'; COMMIT")
                else:
                    await conn.execute("COMMIT")
            except BaseException as exc:
                if isinstance(exc, asyncpg.InternalClientError):
                    # The connection's protocol state broke with the server (it died mid-operation):
                    # no query can run on it again, so it must not go back to the pool.
                    conn.terminate()
                elif not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
        return outcomes

    async def _read_state(
        self, conn: asyncpg.Connection, batch: list[Command]
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
