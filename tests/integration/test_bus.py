"""The bus against a real broker: relay, CloudEvents, exactly-once projections, gaps, rebuild, traces."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cloudevents.v1.kafka import KafkaMessage, from_binary
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventlog import Metadata, NewEvent
from eventlog import relay as relay_module
from eventlog.cloudevents import to_headers, topic_for
from eventlog.projection import SHADOW
from eventlog.rebuild import rebuild
from eventlog.sources import StoreReader
from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog_platform.embedded import EmbeddedBroker, free_port
from modelog_services.audit.projections import AuditTrail
from tests.integration.busfix import Bus, start_bus, stop_bus
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def bus(fresh_db: str, modelog_home: Path, kafka_bootstrap: str) -> AsyncIterator[Bus]:
    b = await start_bus(fresh_db, modelog_home, kafka_bootstrap)
    yield b
    await stop_bus(b)


async def consume(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[object]:  # noqa: ASYNC109
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[object] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < count:
                batch = await consumer.getmany(timeout_ms=200)
                for msgs in batch.values():
                    out.extend(msgs)
    finally:
        await consumer.stop()
    return out


async def test_relay_publishes_the_log_in_order_as_valid_cloudevents(bus: Bus, kafka_bootstrap: str) -> None:
    await bus.append("tracking", 40, stream="run")
    msgs = await consume(kafka_bootstrap, topic_for("tracking", bus.prefix), 40)
    positions = []
    for m in msgs:
        headers = [(k, v) for k, v in m.headers]  # type: ignore[attr-defined]
        event = from_binary(KafkaMessage(headers=dict(headers), key=m.key, value=m.value))  # type: ignore[attr-defined]
        assert event["specversion"] == "1.0"
        assert event["type"] == "dev.modelog.tracking.Thing"
        assert event["source"] == "/modelog/tracking"
        assert event["subject"] == m.key.decode()  # type: ignore[attr-defined]
        assert event["id"] and event["time"]
        assert json.loads(event["metadata"])["actor"] == "alice"
        positions.append(int(event["position"]))
    assert sorted(positions) == list(range(1, 41))
    by_key: dict[bytes, list[int]] = {}
    for m, p in zip(msgs, positions, strict=True):
        by_key.setdefault(m.key, []).append(p)  # type: ignore[attr-defined]
    assert all(ps == sorted(ps) for ps in by_key.values()), "out of order within a key"
    await wait_until_async(lambda: _relay_caught_up(bus), 30, "relay checkpoint at head")


async def _relay_caught_up(bus: Bus) -> bool:
    for r in bus.platform.relays:
        if r.checkpoint != (await r.store.head())[0]:
            return False
    return True


async def test_projection_sees_every_event_of_every_log_exactly_once(bus: Bus) -> None:
    await asyncio.gather(bus.append("tracking", 150), bus.append("registry", 80), bus.append("artifacts", 30))
    await wait_until_async(bus.trail_matches_logs, 30, "audit trail == all logs")
    actors = await bus.pool.fetch("SELECT DISTINCT actor FROM audit.trail WHERE service = 'tracking'")
    assert [r[0] for r in actors] == ["alice"]


async def test_duplicated_and_reordered_messages_give_the_same_view(
    fresh_db: str, modelog_home: Path, kafka_bootstrap: str
) -> None:
    # No relay here: the test is the producer, sending every event twice in a shuffled order.
    b = await start_bus(fresh_db, modelog_home, None)
    await stop_bus(b)
    bus = await start_bus(fresh_db, modelog_home, kafka_bootstrap, prefix=None)
    for relay_task in [t for t in bus.platform._tasks if t.get_name().startswith("relay-")]:
        relay_task.cancel()
    runner = bus.platform.runners["audit_trail"]
    runner.gap_wait_s = runner.head_check_s = 3600.0  # healing off: the view must come from Kafka alone
    await bus.append("tracking", 60)
    events = await bus.platform.stores["tracking"].read_log(1, 1000)
    messages = events + random.Random(7).sample(events, len(events))
    random.Random(3).shuffle(messages)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        for ev in messages:
            await producer.send_and_wait(
                topic_for("tracking", bus.prefix),
                ev.payload_json.encode(),
                key=ev.stream_id.encode(),
                headers=to_headers(ev, None),
            )
    finally:
        await producer.stop()

    async def converged() -> bool:
        return await bus.pool.fetchval("SELECT count(*) FROM audit.trail WHERE service='tracking'") == 60

    await wait_until_async(converged, 30, "60 tracking rows from shuffled duplicates")
    assert runner.stats.duplicates >= 60
    await rebuild(bus.pool, AuditTrail(), StoreReader(bus.platform.stores), swap=False)
    await assert_same_rows(bus.pool, "audit.trail", f"audit.trail{SHADOW}", "service = 'tracking'")
    await stop_bus(bus)


async def assert_same_rows(pool: asyncpg.Pool, live: str, other: str, where: str = "true") -> None:
    cols = "service, position, recorded_at, actor, event_type, stream_id, event_id"
    a = await pool.fetch(f"SELECT {cols} FROM {live} WHERE {where} ORDER BY service, position")
    b = await pool.fetch(f"SELECT {cols} FROM {other} WHERE {where} ORDER BY service, position")
    assert [tuple(r) for r in a] == [tuple(r) for r in b]
    assert a, "compared empty tables"


async def test_a_gap_is_healed_from_the_source_log_never_skipped(bus: Bus) -> None:
    runner = bus.platform.runners["audit_trail"]
    await bus.append("monitoring", 20)
    await wait_until_async(bus.trail_matches_logs, 30, "first 20")
    # Events committed while the relay is away never reach Kafka; Head() gives them away.
    for t in [t for t in bus.platform._tasks if t.get_name() == "relay-monitoring"]:
        t.cancel()
    await bus.append("monitoring", 15)
    await wait_until_async(bus.trail_matches_logs, 30, "35 after healing")
    assert runner.stats.healed_gaps >= 1


async def test_rebuild_equals_live_while_appends_continue(bus: Bus) -> None:
    await bus.append("tracking", 200)
    writer = asyncio.create_task(bus.append("registry", 300))
    report = await rebuild(bus.pool, AuditTrail(), bus.platform.reader)  # type: ignore[arg-type]
    assert report.swapped and report.events >= 200
    await writer
    await wait_until_async(bus.trail_matches_logs, 30, "live view converged after the swap")
    await rebuild(bus.pool, AuditTrail(), bus.platform.reader, swap=False)  # type: ignore[arg-type]
    await assert_same_rows(bus.pool, "audit.trail", f"audit.trail{SHADOW}")


async def test_inline_projection_rebuilds_equal_to_live(bus: Bus) -> None:
    authority = bus.platform.authority
    assert authority is not None
    from eventlog import Metadata
    from modelog_platform.identity import TokensView

    for i in range(5):
        await authority.create(f"user-{i}", ["member"], Metadata(actor="admin"))
    await authority.revoke("user-2", Metadata(actor="admin"))
    before = await bus.pool.fetch("SELECT * FROM identity.tokens ORDER BY name")
    await rebuild(bus.pool, TokensView(), bus.platform.reader)  # type: ignore[arg-type]
    after = await bus.pool.fetch("SELECT * FROM identity.tokens ORDER BY name")
    assert [tuple(r) for r in before] == [tuple(r) for r in after] and len(after) == 7
    assert await authority.resolve("nope") is None


async def test_broker_wipe_loses_nothing_and_the_relay_resumes(fresh_db: str, modelog_home: Path) -> None:
    port = free_port()
    broker = EmbeddedBroker(port=port)
    bootstrap = broker.start()
    bus = await start_bus(fresh_db, modelog_home, bootstrap)
    try:
        await bus.append("tracking", 50)
        await wait_until_async(bus.trail_matches_logs, 30, "before the wipe")
        writer = asyncio.create_task(bus.append("tracking", 100, stream="during"))
        broker.stop()  # everything the broker held is gone
        tracking = bus.platform.stores["tracking"]

        async def written_while_down() -> bool:
            return (await tracking.head())[0] >= 60

        await wait_until_async(written_while_down, 30, "appends while the broker is down")
        broker.start()  # a new, empty broker on the same port
        await writer
        await bus.append("registry", 30)
        await wait_until_async(bus.trail_matches_logs, 60, "after the wipe")
        await wait_until_async(lambda: _relay_caught_up(bus), 60, "relays resumed")
        # The relay publishes new events to the new broker by itself.
        await bus.append("audit", 5)
        msgs = await consume(bootstrap, topic_for("audit", bus.prefix), 5)
        assert len(msgs) == 5
    finally:
        await stop_bus(bus)
        broker.stop()


async def test_one_request_is_one_trace_from_grpc_to_projection(
    bus: Bus, span_exporter: InMemorySpanExporter
) -> None:
    import grpc

    span_exporter.clear()
    token = (bus.platform.settings.admin_token_path).read_text().strip()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bus.server.port}") as ch:
        await identity_pb2_grpc.IdentityStub(ch).CreateToken(
            identity_pb2.CreateTokenRequest(name="traced"), metadata=[("authorization", f"Bearer {token}")]
        )
    server = [s for s in span_exporter.get_finished_spans() if s.name.endswith("/CreateToken")]
    assert server
    trace_id = server[0].context.trace_id

    async def projected() -> bool:
        names = {s.name for s in span_exporter.get_finished_spans() if s.context.trace_id == trace_id}
        return {"eventlog append", "relay publish", "projection audit_trail"} <= names

    try:
        await wait_until_async(projected, 10, "append, relay and projection spans in the request's trace")
    except AssertionError:
        print([(s.name, s.context.trace_id == trace_id) for s in span_exporter.get_finished_spans()])
        raise


async def test_metrics_report_append_latency_lag_heals_and_errors(
    bus: Bus, metric_reader: InMemoryMetricReader
) -> None:
    for t in [t for t in bus.platform._tasks if t.get_name() == "relay-artifacts"]:
        t.cancel()  # artifacts events reach the projection only by healing
    await bus.append("artifacts", 12)
    await wait_until_async(bus.trail_matches_logs, 30, "healed")

    def points(name: str) -> list[object]:
        data = metric_reader.get_metrics_data()
        return [
            p
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for p in m.data.data_points
        ]

    appends = [p for p in points("modelog.append.duration") if p.attributes.get("log") == "artifacts"]  # type: ignore[attr-defined]
    assert appends and appends[0].count >= 12  # type: ignore[attr-defined]
    assert any(p.attributes.get("source") == "artifacts" for p in points("modelog.projection.healed_gaps"))  # type: ignore[attr-defined]
    lags = [p for p in points("modelog.projection.lag") if p.attributes.get("projection") == "audit_trail"]  # type: ignore[attr-defined]
    assert lags and all(p.value >= 0 for p in lags)  # type: ignore[attr-defined]
    assert points("modelog.relay.lag")


async def test_an_event_the_broker_refuses_is_stood_in_for_and_the_rest_of_the_log_flows(
    fresh_db: str,
    modelog_home: Path,
    kafka_bootstrap: str,
    metric_reader: InMemoryMetricReader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A broker whose size limit is below the relay's message size (Kafka's message.max.bytes set low)
    # refuses the event the same way: MessageSizeTooLargeError, which retrying never cures.
    real = relay_module.kafka_broker
    monkeypatch.setattr(relay_module, "kafka_broker", lambda bootstrap, _max=0: real(bootstrap, 200_000))
    bus = await start_bus(fresh_db, modelog_home, kafka_bootstrap)
    try:
        store = bus.platform.stores["tracking"]
        big = json.dumps({"blob": "x" * 500_000})
        await store.append("big", None, [NewEvent("Thing", 1, big)], Metadata(actor="alice"))
        await bus.append("tracking", 5, stream="after")

        msgs = await consume(kafka_bootstrap, topic_for("tracking", bus.prefix), 6)
        headers = {int(dict(m.headers)["ce_position"]): dict(m.headers) for m in msgs}  # type: ignore[attr-defined]
        assert sorted(headers) == [1, 2, 3, 4, 5, 6]
        assert b"MessageSizeTooLargeError" in headers[1]["ce_omitted"]
        assert all("ce_omitted" not in headers[p] for p in range(2, 7))
        [relay] = [r for r in bus.platform.relays if r.store.log == "tracking"]
        assert [p for p, _ in relay.refused] == [1]
        refusals = [
            p
            for rm in metric_reader.get_metrics_data().resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "modelog.relay.refusals"
            for p in m.data.data_points
        ]
        assert any(p.attributes.get("log") == "tracking" for p in refusals)  # type: ignore[attr-defined]
        # The projection reads the refused event from the log instead.
        await wait_until_async(bus.trail_matches_logs, 30, "audit trail has the refused event")
    finally:
        await stop_bus(bus)
