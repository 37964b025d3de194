"""The Kafka-fed projection runner: at most once in effect, never skipping an event.

Messages may arrive twice, late, out of order across partitions, or not at all (a wiped broker).
The runner keeps out-of-order events pending, applies every contiguous run in one transaction with
its checkpoint, and heals a gap by reading the source log through its EventLog API: when a gap
outlives `gap_wait_s`, or when the source's Head() is ahead of the checkpoint while the topic is quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from eventlog.cloudevents import Assembler, NotAModelogEvent, topic_for, traceparent_of
from eventlog.metrics import consumer_errors, healed_gaps, register_lag, unregister_lag
from eventlog.projection import Projection, Tables, apply_in_order, checkpoint
from eventlog.records import RecordedEvent
from eventlog.sources import LogReader

log = logging.getLogger("modelog.projection")
tracer = trace.get_tracer("modelog.projection")
_propagator = TraceContextTextMapPropagator()
HEAL_PAGE = 5000


@dataclass
class SourceState:
    checkpoint: int = 0
    pending: dict[int, tuple[RecordedEvent, str | None]] = field(default_factory=dict)
    gap_since: float | None = None
    last_head_check: float = 0.0
    suspect_head: int = 0
    """A head seen ahead of the checkpoint at the last check; healed if still ahead at the next."""


@dataclass
class RunnerStats:
    applied: int = 0
    duplicates: int = 0
    healed_gaps: int = 0
    healed_events: int = 0
    consumer_errors: int = 0


class ProjectionRunner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        projection: Projection,
        reader: LogReader,
        bootstrap: str | None,
        *,
        group_id: str | None = None,
        topic_prefix: str = "modelog",
        gap_wait_s: float = 0.5,
        head_check_s: float = 1.0,
    ) -> None:
        self.pool = pool
        self.projection = projection
        self.reader = reader
        self.bootstrap = bootstrap
        self.topic_prefix = topic_prefix
        self.group_id = group_id or f"{topic_prefix}.projection.{projection.name}"
        self.gap_wait_s = gap_wait_s
        self.head_check_s = head_check_s
        self.tables = Tables(projection.schema)
        self.sources = {s: SourceState() for s in projection.sources}
        self.stats = RunnerStats()
        self.assembler = Assembler()

    def _lag(self) -> list[tuple[int, dict[str, str]]]:
        return [
            (
                max(0, s.suspect_head - s.checkpoint),
                {"kind": "projection", "projection": self.projection.name, "source": source},
            )
            for source, s in self.sources.items()
        ]

    async def run(self) -> None:
        register_lag(self._lag)
        async with self.pool.acquire() as conn:
            await self.projection.ensure(conn)
            for source, state in self.sources.items():
                state.checkpoint = await checkpoint(conn, self.projection, source, self.tables)
        consume = asyncio.create_task(self._consume_forever()) if self.bootstrap else None
        try:
            while True:
                try:
                    await self._heal_due()
                except (asyncpg.PostgresError, OSError) as exc:
                    self.stats.consumer_errors += 1
                    log.warning("projection %s: %s", self.projection.name, exc)
                await asyncio.sleep(min(self.gap_wait_s, self.head_check_s) / 2)
        finally:
            unregister_lag(self._lag)
            if consume:
                # aiokafka can sit in a group join that ignores one cancel; do not wait forever.
                consume.cancel()
                await asyncio.wait([consume], timeout=2.0)

    # ------------------------------------------------------------------ Kafka side

    async def _consume_forever(self) -> None:
        backoff = 0.2
        while True:
            consumer = AIOKafkaConsumer(
                *(topic_for(s, self.topic_prefix) for s in self.sources),
                bootstrap_servers=self.bootstrap,
                group_id=self.group_id,
                auto_offset_reset="earliest",
                enable_auto_commit=True,  # offsets only save work; the checkpoint in PostgreSQL is the truth
                metadata_max_age_ms=5000,
                # Long-poll briefly: the broker answers as soon as data arrives, but some brokers
                # (tansu) hold a fetch for the whole wait; 500 ms (the default) shows up as lag.
                fetch_max_wait_ms=25,
            )
            try:
                await consumer.start()
                backoff = 0.2
                while True:
                    batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                    for messages in batches.values():
                        for m in messages:
                            self._offer(m.value or b"", m.headers or ())
                    if batches:
                        await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker may vanish; healing keeps us correct
                self.stats.consumer_errors += 1
                consumer_errors.add(1, {"projection": self.projection.name})
                log.warning(
                    "projection %s: consumer error %s; reconnecting in %.1fs",
                    self.projection.name,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                # Leaving the group politely can take seconds on some brokers; the checkpoint in
                # PostgreSQL does not depend on it.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), 1.0)

    def _offer(self, value: bytes, headers: tuple[tuple[str, bytes], ...] | list[tuple[str, bytes]]) -> None:
        try:
            ev = self.assembler.offer(value, headers)
        except NotAModelogEvent as exc:
            self.stats.consumer_errors += 1
            log.warning("projection %s: %s", self.projection.name, exc)
            return
        if ev is None:  # a chunk of an unfinished event, or a stand-in that healing fills from the log
            return
        state = self.sources.get(ev.log)
        if state is None:
            return
        if ev.position <= state.checkpoint or ev.position in state.pending:
            self.stats.duplicates += 1
            return
        state.pending[ev.position] = (ev, traceparent_of(headers))

    async def _drain(self) -> None:
        for source, state in self.sources.items():
            run: list[tuple[RecordedEvent, str | None]] = []
            nxt = state.checkpoint + 1
            while nxt in state.pending:
                run.append(state.pending.pop(nxt))
                nxt += 1
            if run:
                await self._apply(source, run)
            state.gap_since = (state.gap_since or time.monotonic()) if state.pending else None

    # ------------------------------------------------------------------ healing

    async def _heal_due(self) -> None:
        now = time.monotonic()
        for source, state in self.sources.items():
            target = 0
            if state.pending and state.gap_since is not None and now - state.gap_since >= self.gap_wait_s:
                target = min(state.pending) - 1
            elif now - state.last_head_check >= self.head_check_s:
                # Kafka gets one check interval to deliver what the head shows; what is still
                # missing at the next check is read from the log.
                state.last_head_check = now
                if state.suspect_head > state.checkpoint and not state.pending:
                    target = state.suspect_head
                try:
                    head = await self.reader.head(source)
                except Exception as exc:  # noqa: BLE001
                    log.warning(
                        "projection %s: cannot read head of %s: %s", self.projection.name, source, exc
                    )
                    continue
                state.suspect_head = head if head > state.checkpoint else 0
            if target > state.checkpoint:
                await self._heal(source, state, target)
            await self._drain()

    async def _heal(self, source: str, state: SourceState, target: int) -> None:
        # Another process of this projection (`modelog up --workers`) may own the topic's partition
        # and have applied the events already: one query, instead of reading them from the log.
        async with self.pool.acquire() as conn:
            state.checkpoint = max(
                state.checkpoint, await checkpoint(conn, self.projection, source, self.tables)
            )
        if state.checkpoint >= target:
            for pos in [p for p in state.pending if p <= state.checkpoint]:
                del state.pending[pos]
            return
        self.stats.healed_gaps += 1
        healed_gaps.add(1, {"projection": self.projection.name, "source": source})
        log.info(
            "projection %s: healing %s positions %d..%d from the log",
            self.projection.name,
            source,
            state.checkpoint + 1,
            target,
        )
        while state.checkpoint < target:
            try:
                events = await self.reader.read(
                    source, state.checkpoint + 1, min(HEAL_PAGE, target - state.checkpoint)
                )
            except Exception as exc:  # noqa: BLE001
                log.warning("projection %s: heal read failed: %s", self.projection.name, exc)
                return
            if not events:
                return
            before = state.checkpoint
            await self._apply(source, [(e, None) for e in events])
            self.stats.healed_events += state.checkpoint - before
            if state.checkpoint == before:
                return
        for pos in [p for p in state.pending if p <= state.checkpoint]:
            del state.pending[pos]

    async def _apply(self, source: str, run: list[tuple[RecordedEvent, str | None]]) -> None:
        state = self.sources[source]
        parent = next((tp for _, tp in reversed(run) if tp), None) or _metadata_traceparent(run[-1][0])
        ctx = _propagator.extract({"traceparent": parent}) if parent else None
        with tracer.start_as_current_span(
            f"projection {self.projection.name}",
            context=ctx,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "modelog.source": source,
                "modelog.first_position": run[0][0].position,
                "modelog.last_position": run[-1][0].position,
            },
        ):
            async with self.pool.acquire() as conn, conn.transaction():
                before = state.checkpoint
                state.checkpoint = await apply_in_order(
                    conn, self.projection, source, [e for e, _ in run], self.tables
                )
        applied = state.checkpoint - before
        self.stats.applied += max(0, applied)
        self.stats.duplicates += len(run) - max(0, applied)

    async def lag(self) -> dict[str, int]:
        out = {}
        for source, state in self.sources.items():
            out[source] = max(0, await self.reader.head(source) - state.checkpoint)
        return out


def _metadata_traceparent(ev: RecordedEvent) -> str | None:
    """Events healed from the log carry no Kafka header; the request's trace is in their metadata."""
    if '"traceparent"' not in ev.metadata_json:
        return None
    value = json.loads(ev.metadata_json).get("traceparent")
    return value if isinstance(value, str) else None
