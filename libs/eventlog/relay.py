"""The outbox relay: publishes a log to its Kafka topic in log order, from a checkpoint in PostgreSQL.

The log is the outbox (positions are gap-free and commit-ordered), so the relay publishes "everything
after my checkpoint". Delivery is at least once: a crash between publish and checkpoint republishes,
and consumers drop the duplicates by position. One relay per log holds a session advisory lock, so
horizontally scaled processes do not all publish the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from eventlog.cloudevents import (
    MAX_MESSAGE_BYTES,
    Message,
    OversizedEvent,
    omitted_message,
    to_messages,
    topic_for,
)
from eventlog.metrics import register_lag, relay_refusals, unregister_lag
from eventlog.records import RecordedEvent
from eventlog.store import EventStore

log = logging.getLogger("modelog.relay")
tracer = trace.get_tracer("modelog.relay")
_propagator = TraceContextTextMapPropagator()


def relay_ddl(schema: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {schema}.relay_checkpoint (
    topic      text PRIMARY KEY,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


def kafka_broker(bootstrap: str, max_message_bytes: int = MAX_MESSAGE_BYTES) -> KafkaBroker:
    """Producer settings that work on Apache Kafka and on the embedded tansu broker alike.

    The producer's own size cap is the message size the relay writes (tansu has no cap of its own:
    it took 20 MB messages when checked); larger events travel as chunks (`to_messages`).
    """
    return KafkaBroker(
        bootstrap,
        enable_idempotence=False,
        acks="all",
        linger_ms=2,
        logger=None,
        max_request_size=max_message_bytes,
    )


async def send(
    broker: KafkaBroker,
    topic: str,
    events: Sequence[RecordedEvent],
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    traceparent: Callable[[RecordedEvent], str | None] = lambda ev: None,
) -> None:
    """Publishes events in order, each as one message or as its chunks, and waits for every confirm.

    Sends are queued in log order and confirmed together; per-partition order is kept by the
    producer (all chunks of an event share its key), and a failed batch is republished whole.
    """
    pending = []
    for ev in events:
        for msg in to_messages(ev, traceparent(ev), max_message_bytes):
            pending.append(await _send_one(broker, topic, ev.stream_id, msg))
    await asyncio.gather(*pending)


async def _send_one(broker: KafkaBroker, topic: str, key: str, msg: Message) -> Any:
    return await broker.publish(
        msg.value,
        topic,
        key=key.encode(),
        headers={k: v.decode() for k, v in msg.headers},
        no_confirm=True,
    )


class Relay:
    def __init__(
        self,
        store: EventStore,
        bootstrap: str,
        *,
        topic_prefix: str = "modelog",
        batch: int = 1000,
        idle_poll_s: float = 5.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.store = store
        self.bootstrap = bootstrap
        self.topic = topic_for(store.log, topic_prefix)
        self.batch = batch
        self.idle_poll_s = idle_poll_s
        self.checkpoint = 0
        self.published = 0
        self.last_publish_at = 0.0
        self.seen_head = 0
        self.max_message_bytes = max_message_bytes
        self.refused: list[tuple[int, str]] = []
        """(position, reason) of events the broker refused, sent as stand-ins (last 100)."""
        self._lock_key = f"modelog.relay.{store.log}"

    async def run(self) -> None:
        """Relay forever; on any broker or database error, back off and resume from the checkpoint."""
        backoff = 0.2
        while True:
            try:
                await self._lead_and_publish()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - transport trouble must never stop the relay
                log.warning("relay %s: %s; retrying in %.1fs", self.topic, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.2

    async def _lead_and_publish(self) -> None:
        pool = self.store.pool
        async with pool.acquire() as lock_conn:
            # Another process relays this log while it holds the lock; poll for its death.
            while not await lock_conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self._lock_key):  # noqa: ASYNC110
                await asyncio.sleep(1.0)
            try:
                await self._publish_loop(pool)
            finally:
                with contextlib.suppress(Exception):
                    await lock_conn.execute("SELECT pg_advisory_unlock(hashtext($1))", self._lock_key)

    async def _publish_loop(self, pool: asyncpg.Pool) -> None:
        broker = kafka_broker(self.bootstrap, self.max_message_bytes)
        await broker.connect()
        try:
            self.checkpoint = await pool.fetchval(
                f"SELECT coalesce(max(position), 0) FROM {self.store.log}.relay_checkpoint WHERE topic = $1",
                self.topic,
            )
            register_lag(self._lag)
            async for events in self.store.tail_batches(self.checkpoint + 1, self.batch, self.idle_poll_s):
                self.seen_head = max(self.seen_head, events[-1].position)
                await self._publish(broker, events)
                last = events[-1].position
                await pool.execute(
                    f"INSERT INTO {self.store.log}.relay_checkpoint (topic, position) VALUES ($1, $2) "
                    "ON CONFLICT (topic) DO UPDATE SET position = excluded.position, updated_at = now()",
                    self.topic,
                    last,
                )
                self.checkpoint = last
                self.published += len(events)
                self.last_publish_at = time.time()
        finally:
            unregister_lag(self._lag)
            await broker.stop()

    async def _publish(self, broker: KafkaBroker, events: Sequence[RecordedEvent]) -> None:
        try:
            await send(broker, self.topic, events, self.max_message_bytes, self._traceparent)
        except (KafkaError, OversizedEvent) as exc:
            if isinstance(exc, KafkaError) and exc.retriable:
                raise
            # The broker refused some event's content (size, format): find it, so that one poison
            # event never holds back the rest of the log. Resending the others is at least once.
            for ev in events:
                try:
                    await send(broker, self.topic, [ev], self.max_message_bytes, self._traceparent)
                except (KafkaError, OversizedEvent) as one:
                    if isinstance(one, KafkaError) and one.retriable:
                        raise
                    await self._stand_in(broker, ev, one)

    async def _stand_in(self, broker: KafkaBroker, ev: RecordedEvent, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        log.error(
            "relay %s: the broker refused position %d (%s on stream %s): %s; published a stand-in "
            "(header ce_omitted) in its place, consumers read the event from the log",
            self.topic,
            ev.position,
            ev.type,
            ev.stream_id,
            reason,
        )
        relay_refusals.add(1, {"log": self.store.log, "reason": type(exc).__name__})
        self.refused = [*self.refused[-99:], (ev.position, reason)]
        stand_in = omitted_message(ev, reason)
        await asyncio.gather(await _send_one(broker, self.topic, ev.stream_id, stand_in))

    def _traceparent(self, ev: RecordedEvent) -> str | None:
        traceparent = _traceparent(ev)
        if not traceparent:
            return None
        parent = _propagator.extract({"traceparent": traceparent})
        with tracer.start_as_current_span(
            "relay publish",
            context=parent,
            kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.destination.name": self.topic, "modelog.position": ev.position},
        ):
            carrier: dict[str, str] = {}
            _propagator.inject(carrier)
            return carrier.get("traceparent", traceparent)

    def _lag(self) -> list[tuple[int, dict[str, str]]]:
        return [(max(0, self.seen_head - self.checkpoint), {"kind": "relay", "log": self.store.log})]

    async def lag(self) -> int:
        head, _, _ = await self.store.head()
        return max(0, head - self.checkpoint)


def _traceparent(ev: RecordedEvent) -> str | None:
    if '"traceparent"' not in ev.metadata_json:
        return None
    value = json.loads(ev.metadata_json).get("traceparent")
    return value if isinstance(value, str) else None
