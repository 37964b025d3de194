"""The webhook dispatcher: per enabled webhook, one worker that follows every log from the webhook's
cursor (through subscribe.py, the one log follower) and POSTs each matching event, in order.

- One event at a time per webhook: the next waits until the current one is delivered or has failed
  every attempt (order preserved). Retries wait with exponential backoff and full jitter.
- Each attempt lands in the delivery log; when an event is finished with, its row and the cursor are
  written in one transaction, so a restart resumes right after it and a retry interrupted by a restart
  is picked up with its attempt count (the same `webhook-id`: receivers may see it twice, never lose it).
- After `webhook_disable_after` consecutive failed deliveries the webhook is disabled (a
  WebhookDisabled event) and its cursor stays before the last failed event: EnableWebhook resumes there.
- One dispatcher per installation: a PostgreSQL advisory lock elects it among audit processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from eventlog import CommandPath, EventStore, Metadata, RecordedEvent
from eventlog.cloudevents import to_structured
from eventlog.sources import LogReader
from modelog.shared.audit.cursor import decode_cursor
from modelog.shared.settings import Settings
from modelog_services.audit import webhook_store as db
from modelog_services.audit.domain import DisableWebhook, stream_id, webhook
from modelog_services.audit.events import WebhookFilterValue, registry
from modelog_services.audit.shared_tail import SharedTail
from modelog_services.audit.ssrf import AllowList
from modelog_services.audit.subscribe import Filter, subscribe
from modelog_services.audit.webhook_http import Response, Sender, secret_key, signed_headers

log = logging.getLogger("modelog.audit.webhooks")
_LEADER_KEY = int.from_bytes(hashlib.sha256(b"modelog.audit.webhooks").digest()[:8], "big", signed=True)
_CHECKPOINT_EVERY_S = 1.0
_LOG_BATCH = 500
_BODY_CACHE = 10_000
_LOG_EVERY_S = 0.05


def backoff(attempt: int, base_s: float, max_s: float) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))] (AWS architecture blog's advice:
    spreads retries of many webhooks instead of synchronising them)."""
    return random.uniform(0.0, min(max_s, base_s * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class Policy:
    attempts: int
    base_s: float
    max_s: float
    disable_after: int
    connect_timeout_s: float
    read_timeout_s: float
    allow: AllowList

    @classmethod
    def of(cls, s: Settings) -> Policy:
        return cls(
            s.webhook_attempts,
            s.webhook_backoff_base_s,
            s.webhook_backoff_max_s,
            s.webhook_disable_after,
            s.webhook_connect_timeout_s,
            s.webhook_read_timeout_s,
            AllowList.parse(s.webhook_allow),
        )

    def sender(self, url: str) -> Sender:
        return Sender(url, self.allow, self.connect_timeout_s, self.read_timeout_s)


class ModelMatch:
    """Registry streams of the models a filter names, learnt from ModelRegistered/ModelRenamed as the
    registry log goes by (seeded from the log's history up to the worker's start)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)
        self.streams: set[str] = {f"model-name-{n}" for n in names}

    def see(self, ev: RecordedEvent) -> None:
        if ev.log == "registry" and ev.type in ("ModelRegistered", "ModelRenamed"):
            name = json.loads(ev.payload_json).get("name")
            if name in self.names:
                self.streams.add(ev.stream_id)
            else:
                self.streams.discard(ev.stream_id)

    def match(self, ev: RecordedEvent) -> bool:
        return ev.log == "registry" and ev.stream_id in self.streams

    async def seed(self, reader: LogReader, upto: int) -> None:
        position = 1
        while position <= upto:
            batch = await reader.read("registry", position, min(5000, upto - position + 1))
            if not batch:
                return
            for ev in batch:
                self.see(ev)
            position = batch[-1].position + 1


def event_filter(f: WebhookFilterValue) -> Filter:
    services = set(f.services) | ({"registry"} if f.models and not f.services else set())
    return Filter(frozenset(services), frozenset(f.types), tuple(f.streams))


class DeliveryLog:
    """First-attempt successes (the common case) are logged in batches, off the delivery path: one
    statement writes the rows, their attempts and the cursor after the last of them. A crash loses at
    most the unwritten batch (~50 ms), whose events are then sent again with the same `webhook-id`:
    at-least-once, as the spec expects receivers to handle."""

    def __init__(self, pool: asyncpg.Pool, webhook_id: str) -> None:
        self.pool, self.webhook_id = pool, webhook_id
        self.items: list[tuple[RecordedEvent, float, int]] = []
        self.after: dict[str, int] = {}
        self.first_at = 0.0
        self.writing: asyncio.Task[None] | None = None

    async def add(self, ev: RecordedEvent, resp: Response, after: dict[str, int]) -> None:
        loop = asyncio.get_running_loop()
        if not self.items:
            self.first_at = loop.time()
        self.items.append((ev, resp.latency_ms, resp.status))
        self.after = after
        if len(self.items) >= _LOG_BATCH or loop.time() - self.first_at >= _LOG_EVERY_S:
            await self._write()

    async def _write(self) -> None:
        if self.writing is not None:
            await self.writing  # one write at a time, in order; a slow database slows delivery down
            self.writing = None
        if self.items:
            items, self.items = self.items, []
            write = db.log_delivered(self.pool, self.webhook_id, items, self.after)
            self.writing = asyncio.create_task(write)

    async def flush(self) -> None:
        await self._write()
        if self.writing is not None:
            writing, self.writing = self.writing, None
            await writing


class Worker:
    def __init__(self, d: Dispatcher, row: db.WebhookRow, secret: str) -> None:
        self.d, self.row = d, row
        self.key = secret_key(secret)
        self.sender = d.policy.sender(row.url)
        self.config = (row.url, row.filter, row.secret_fingerprint)
        self.task: asyncio.Task[None] | None = None
        self.log = DeliveryLog(d.pool, row.webhook_id)
        self.unfinished: set[tuple[str, int]] = set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._run()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook %s: worker failed; resuming from its cursor", self.row.webhook_id)
                    await asyncio.sleep(1.0)
        finally:
            with contextlib.suppress(Exception):
                # Stopped (config change, shutdown): log what was sent, so it is not sent twice.
                async with asyncio.timeout(5.0):
                    await asyncio.shield(self.log.flush())
            await self.sender.close()

    async def _run(self) -> None:
        wid, flt = self.row.webhook_id, self.row.filter
        saved, failures = await db.cursor(self.d.pool, wid)
        positions = dict(saved if saved is not None else self.row.start)
        self.log = DeliveryLog(self.d.pool, wid)
        self.unfinished = await db.unfinished(self.d.pool, wid, positions)
        models = ModelMatch(flt.models) if flt.models else None
        if models is not None and "registry" in self.d.logs:
            await models.seed(self.d.reader, positions.get("registry", 0))
        # The filter's services narrow what is read; types, streams and models are matched here, so
        # that model names are learnt from events the filter does not deliver.
        coarse = Filter(event_filter(flt).services)
        fine = event_filter(flt)
        loop = asyncio.get_running_loop()
        saved_at = loop.time()
        dirty = False
        async for events, _, cursor in subscribe(
            self.d.tails, self.d.reader, self.d.logs, positions, coarse, 1.0
        ):
            for ev in events:
                after = {**positions, ev.log: ev.position}  # the event's own cursor, not decoded
                if models is not None:
                    models.see(ev)
                if not fine.match(ev) or (models is not None and not models.match(ev)):
                    positions, dirty = after, True
                    continue
                outcome = await self.deliver(ev, after, failures)
                if outcome is None:
                    return  # disabled: the cursor stays before this event
                failures, positions, dirty = outcome, after, False
                saved_at = loop.time()
            if not events:
                now = {**positions, **decode_cursor(cursor)}
                dirty = dirty or now != positions
                positions = now
            if not events:
                await self.log.flush()  # quiet: the log catches up now rather than with the next event
            if dirty and loop.time() - saved_at >= _CHECKPOINT_EVERY_S:
                await self.log.flush()
                await db.save_cursor(self.d.pool, wid, positions, failures)
                saved_at, dirty = loop.time(), False

    async def deliver(self, ev: RecordedEvent, after: dict[str, int], failures: int) -> int | None:
        """Deliver with retries; returns the new run of consecutive failures, or None if the run
        reached the limit and the webhook was disabled."""
        p, pool, wid = self.d.policy, self.d.pool, self.row.webhook_id
        body = self.d.body(ev)
        first: Response | None = None
        if (ev.log, ev.position) not in self.unfinished:
            first = await self.sender.post(body, signed_headers(self.key, ev.event_id, body))
            if first.ok:
                await self.log.add(ev, first, after)
                return 0
        # The slow path, logged attempt by attempt: a retry, or what a restart left unfinished.
        self.unfinished.discard((ev.log, ev.position))
        await self.log.flush()
        started = await db.start_delivery(pool, wid, ev, "dispatch")
        attempt, series = started.attempts, started.series_attempts
        while True:
            attempt += 1
            series += 1
            resp = first or await self.sender.post(body, signed_headers(self.key, ev.event_id, body))
            first = None
            if resp.ok:
                await db.record_attempt(
                    pool, started.delivery_id, attempt, "delivered", *_r(resp), (wid, after, 0)
                )
                return 0
            if series < p.attempts:
                await db.record_attempt(pool, started.delivery_id, attempt, "retrying", *_r(resp))
                await asyncio.sleep(backoff(series, p.base_s, p.max_s))
                continue
            failures += 1
            if failures < p.disable_after:
                await db.record_attempt(
                    pool, started.delivery_id, attempt, "failed", *_r(resp), (wid, after, failures)
                )
                return failures
            await db.record_attempt(pool, started.delivery_id, attempt, "failed", *_r(resp))
            reason = f"{failures} consecutive deliveries failed; last: {resp.error or resp.status}"
            await self.d.commands.execute(
                webhook,
                stream_id(wid),
                DisableWebhook(reason[:500], failures),
                Metadata(actor="system"),
            )
            log.warning("webhook %s disabled: %s", wid, reason)
            return None


async def stopped(task: asyncio.Task[None]) -> None:
    """Cancel a child task and wait for its end. Not `await task` under suppress(CancelledError): that
    would also swallow the cancellation of the caller itself. Cancelled again until it ends: a library
    may drop one cancellation (asyncio.wait_for does in Python 3.11)."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=1.0)


def _r(resp: Response) -> tuple[int, float, str]:
    return resp.status, resp.latency_ms, resp.error


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        stores: Mapping[str, EventStore],
        reader: LogReader,
        logs: Sequence[str],
        policy: Policy,
    ) -> None:
        self.pool, self.stores, self.reader, self.logs, self.policy = pool, stores, reader, logs, policy
        self.audit = stores["audit"]
        self.commands = CommandPath(self.audit, events=registry)
        self._bodies: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self.tails = {log: SharedTail(store) for log, store in stores.items()}
        self.workers: dict[str, Worker] = {}
        self.leader = asyncio.Event()

    def body(self, ev: RecordedEvent) -> bytes:
        """The event's CloudEvents JSON, encoded once for every webhook that gets it."""
        key = (ev.log, ev.position)
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = to_structured(ev)
            if len(self._bodies) > _BODY_CACHE:
                self._bodies.popitem(last=False)
        return body

    async def run(self) -> None:
        """Wait to be the one dispatcher of this installation, then dispatch until cancelled."""
        while True:
            try:
                async with self.pool.acquire() as lock_conn:
                    if await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", _LEADER_KEY):
                        try:
                            await self._lead(lock_conn)
                        finally:
                            await self._stop_all()
                            self.leader.clear()
                            with contextlib.suppress(Exception):
                                await lock_conn.execute("SELECT pg_advisory_unlock($1)", _LEADER_KEY)
            except asyncio.CancelledError:
                raise
            except Exception:  # PostgreSQL restarting must not end webhook delivery
                log.exception("webhook dispatcher stopped; trying again in 5 s")
            await asyncio.sleep(5.0)

    async def _lead(self, lock_conn: asyncpg.Connection) -> None:
        supervise = asyncio.create_task(self._supervise(), name="webhooks-supervise")
        self.leader.set()
        try:
            while not supervise.done():
                await asyncio.wait([supervise], timeout=5.0)
                if not supervise.done():
                    await lock_conn.fetchval("SELECT 1")  # still holding the lock's session?
            supervise.result()
        finally:
            await stopped(supervise)

    async def _supervise(self) -> None:
        head = (await self.audit.head())[0]
        for row in await db.list_all(self.pool):
            await self.reconcile(row.webhook_id)
        async for batch in self.audit.tail_batches(head + 1, idle_poll_s=1.0):
            changed = {
                json.loads(ev.payload_json).get("webhook_id") for ev in batch if ev.type.startswith("Webhook")
            }
            for wid in sorted(w for w in changed if w):
                await self.reconcile(wid)

    async def reconcile(self, webhook_id: str) -> None:
        """Start, restart or stop the webhook's worker to match its registration."""
        row = await db.get(self.pool, webhook_id)
        current = self.workers.get(webhook_id)
        wanted = row is not None and row.status == "enabled"
        if current is not None and wanted and row is not None:
            running = current.task is not None and not current.task.done()
            if running and current.config == (row.url, row.filter, row.secret_fingerprint):
                return
        if current is not None:
            await self._stop(webhook_id)
        if not wanted or row is None:
            return
        secret = await db.secret(self.pool, webhook_id, row.secret_fingerprint)
        if secret is None:
            log.error("webhook %s: its secret is missing; not delivering", webhook_id)
            return
        w = Worker(self, row, secret)
        w.task = asyncio.create_task(w.run(), name=f"webhook-{webhook_id}")
        self.workers[webhook_id] = w

    async def _stop(self, webhook_id: str) -> None:
        w = self.workers.pop(webhook_id, None)
        if w is not None and w.task is not None:
            await stopped(w.task)

    async def _stop_all(self) -> None:
        for wid in list(self.workers):
            await self._stop(wid)
        for tail in self.tails.values():
            await tail.close()
