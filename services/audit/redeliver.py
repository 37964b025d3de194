"""Replay re-delivery: publish a range of events to a Kafka topic exactly as the relay does
(CloudEvents 1.0 binary mode, key = stream id), or POST it to a webhook exactly as the dispatcher
does, for rebuilding a downstream system."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from eventlog.cloudevents import to_structured
from eventlog.records import RecordedEvent
from eventlog.relay import kafka_broker, send

BATCH = 1_000


def _chunks(events: Iterable[RecordedEvent]) -> Iterator[list[RecordedEvent]]:
    it = iter(events)
    while chunk := list(islice(it, BATCH)):
        yield chunk


async def publish(events: Iterable[RecordedEvent], bootstrap: str, topic: str) -> int:
    """Publishes in order, a batch at a time, each batch confirmed before the next; returns the count."""
    broker = kafka_broker(bootstrap)
    await broker.connect()
    sent = 0
    try:
        for chunk in _chunks(events):
            await send(broker, topic, chunk)
            sent += len(chunk)
    finally:
        await broker.stop()
    return sent


async def post_signed(events: Iterable[RecordedEvent], url: str, secret: str) -> tuple[int, str]:
    """POST each event to a webhook URL exactly as the dispatcher does (structured CloudEvents JSON,
    Standard Webhooks signature, `webhook-id` = the event's id), in order, stopping at the first
    refusal. Returns (events delivered, why it stopped or "")."""
    from modelog_services.audit.domain import check_url
    from modelog_services.audit.webhook_http import Sender, secret_key, signed_headers

    key = secret_key(secret)
    sender = Sender(check_url(url), None)
    sent = 0
    try:
        for ev in events:
            body = to_structured(ev)
            resp = await sender.post(body, signed_headers(key, ev.event_id, body))
            if not resp.ok:
                return sent, f"{ev.log} #{ev.position} was not accepted ({resp.error})"
            sent += 1
    finally:
        await sender.close()
    return sent, ""
