"""Events on Kafka: CloudEvents 1.0 in binary mode (`ce_*` headers, JSON body), key = stream id.

Extension attributes carry everything else a stored event has (position, stream version, schema
version, metadata, hashes), so a consumer rebuilds exactly the RecordedEvent that ReadLog would give.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from eventlog.records import RecordedEvent

SPEC_VERSION = "1.0"
TYPE_PREFIX = "dev.modelog"

MAX_MESSAGE_BYTES = 1_000_000
"""Largest Kafka message the relay writes (value, key and headers). Below Apache Kafka's default
`message.max.bytes` (1,048,588) and aiokafka's default `max_request_size` (1,048,576), so any broker
left at its defaults takes every message; an event whose body does not fit is split into chunks."""

RECORD_OVERHEAD = 512
"""Bytes a record's framing and the chunk headers may add on top of value, key and headers."""


def topic_for(log: str, prefix: str = "modelog") -> str:
    """`modelog.<service>.events.v1`; another prefix lets installations share one Kafka cluster."""
    return f"{prefix}.{log}.events.v1"


def ce_type(log: str, event_type: str) -> str:
    return f"{TYPE_PREFIX}.{log}.{event_type}"


def to_headers(ev: RecordedEvent, traceparent: str | None) -> list[tuple[str, bytes]]:
    headers = _attributes(ev)
    if traceparent:
        headers.append(("traceparent", traceparent))
    return [(k, v.encode()) for k, v in headers]


def to_structured(ev: RecordedEvent) -> bytes:
    """The same event in structured mode (`application/cloudevents+json`), as webhooks send it: the
    binary mode's attributes, named without `ce_`, and `data`, the payload JSON exactly as stored."""
    attrs = {
        ("datacontenttype" if k == "content-type" else k.removeprefix("ce_")): v for k, v in _attributes(ev)
    }
    head = json.dumps(attrs, separators=(",", ":"), ensure_ascii=False)
    return (head[:-1] + ',"data":' + ev.payload_json + "}").encode()


def _attributes(ev: RecordedEvent) -> list[tuple[str, str]]:
    return [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", ev.event_id),
        ("ce_source", f"/modelog/{ev.log}"),
        ("ce_type", ce_type(ev.log, ev.type)),
        ("ce_time", ev.recorded_at.isoformat().replace("+00:00", "Z")),
        ("ce_subject", ev.stream_id),
        ("content-type", "application/json"),
        ("ce_position", str(ev.position)),
        ("ce_streamversion", str(ev.stream_version)),
        ("ce_schemaversion", str(ev.schema_version)),
        ("ce_metadata", ev.metadata_json),
        ("ce_prevhash", ev.prev_hash.hex()),
        ("ce_hash", ev.hash.hex()),
    ]


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka record the relay sends: the body and its headers (the key is the event's stream id)."""

    value: bytes
    headers: list[tuple[str, bytes]]


def to_messages(
    ev: RecordedEvent, traceparent: str | None, max_bytes: int = MAX_MESSAGE_BYTES
) -> list[Message]:
    """The event as one message, or, when its body does not fit `max_bytes`, as consecutive chunks.

    Every chunk carries all the event's headers plus `ce_chunkindex` (0-based) and `ce_chunkcount`;
    the body of the event is the chunks' bodies concatenated in index order. All chunks share the key,
    so they land on one partition in order. Raises OversizedEvent when even the headers do not fit.
    """
    headers = to_headers(ev, traceparent)
    body = ev.payload_json.encode()
    fixed = sum(len(k) + len(v) for k, v in headers) + len(ev.stream_id.encode()) + RECORD_OVERHEAD
    if fixed + len(body) <= max_bytes:
        return [Message(body, headers)]
    room = max_bytes - fixed
    if room < 1024:
        raise OversizedEvent(
            f"{ev.log} position {ev.position}: its headers alone take {fixed} bytes, "
            f"more than a {max_bytes}-byte message leaves for a body"
        )
    count = -(-len(body) // room)
    return [
        Message(
            body[i * room : (i + 1) * room],
            [*headers, ("ce_chunkindex", str(i).encode()), ("ce_chunkcount", str(count).encode())],
        )
        for i in range(count)
    ]


def omitted_message(ev: RecordedEvent, reason: str) -> Message:
    """A stand-in for an event the broker refused: its identity and hashes, no body or metadata.

    Consumers resolve it by reading the event from the source log (EventLog.ReadLog at `ce_position`);
    the relay sends it so that one refused event never holds back the rest of the log.
    """
    keep = {"ce_metadata"}
    headers = [(k, v) for k, v in to_headers(ev, None) if k not in keep]
    return Message(b"", [*headers, ("ce_omitted", reason[:500].encode())])


class OversizedEvent(ValueError):
    """An event that cannot be written as Kafka messages of the configured size."""


class Assembler:
    """Turns relay messages back into events: whole ones at once, chunked ones when complete.

    Chunks of one event arrive in order on one partition, but a redelivery may repeat them and a
    broker wipe may lose some; incomplete events are kept for at most `max_partial` events (oldest
    dropped first: the projection heals that position from the log). A reassembled event is checked
    against its own hash, so a mixed-up chunk is never applied.
    """

    def __init__(self, max_partial: int = 64) -> None:
        self.max_partial = max_partial
        self.omitted = 0
        self._partial: OrderedDict[tuple[str, str], dict[int, bytes]] = OrderedDict()

    def offer(
        self, value: bytes, headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]
    ) -> RecordedEvent | None:
        """The event this message completes, or None (a chunk of an unfinished event, or a stand-in).

        Raises NotAModelogEvent for a message that is not ours or does not reassemble."""
        h = {k: v for k, v in headers}
        if "ce_omitted" in h:
            self.omitted += 1
            return None
        count_raw = h.get("ce_chunkcount")
        if count_raw is None:
            return from_message(value, headers)
        try:
            count, index = int(count_raw), int(h["ce_chunkindex"])
            key = (h["ce_source"].decode(), h["ce_position"].decode())
        except (KeyError, ValueError) as exc:
            raise NotAModelogEvent(f"bad chunk headers: {exc}") from None
        if not 0 <= index < count:
            raise NotAModelogEvent(f"chunk {index} of {count} is out of range")
        parts = self._partial.setdefault(key, {})
        self._partial.move_to_end(key)
        parts[index] = value
        if len(parts) < count:
            while len(self._partial) > self.max_partial:
                self._partial.popitem(last=False)
            return None
        del self._partial[key]
        base = [(k, v) for k, v in headers if k not in ("ce_chunkindex", "ce_chunkcount")]
        ev = from_message(b"".join(parts[i] for i in range(count)), base)
        if ev.chain_row().recompute(ev.prev_hash) != ev.hash:
            raise NotAModelogEvent(f"{key[0]} position {key[1]}: reassembled chunks do not match its hash")
        return ev


class NotAModelogEvent(ValueError):
    """A message on a modelog topic that lacks our headers (someone else's producer)."""


def from_message(
    value: bytes, headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]
) -> RecordedEvent:
    h = {k: v.decode() for k, v in headers}
    try:
        source = h["ce_source"]
        log = source.rsplit("/", 1)[-1]
        event_type = h["ce_type"].removeprefix(f"{TYPE_PREFIX}.{log}.")
        return RecordedEvent(
            log=log,
            position=int(h["ce_position"]),
            stream_id=h["ce_subject"],
            stream_version=int(h["ce_streamversion"]),
            event_id=h["ce_id"],
            type=event_type,
            schema_version=int(h["ce_schemaversion"]),
            payload_json=value.decode(),
            metadata_json=h["ce_metadata"],
            recorded_at=datetime.fromisoformat(h["ce_time"].replace("Z", "+00:00")),
            prev_hash=bytes.fromhex(h["ce_prevhash"]),
            hash=bytes.fromhex(h["ce_hash"]),
        )
    except (KeyError, ValueError) as exc:
        raise NotAModelogEvent(f"not a modelog event message: {exc}") from None


def traceparent_of(headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]) -> str | None:
    for k, v in headers:
        if k == "traceparent":
            return v.decode()
    return None
