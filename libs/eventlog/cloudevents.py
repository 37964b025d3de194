"""Events on Kafka: CloudEvents 1.0 in binary mode (`ce_*` headers, JSON body), key = stream id.

Extension attributes carry everything else a stored event has (position, stream version, schema
version, metadata, hashes), so a consumer rebuilds exactly the RecordedEvent that ReadLog would give.
"""

from __future__ import annotations

import json
from datetime import datetime

from eventlog.records import RecordedEvent

SPEC_VERSION = "1.0"
TYPE_PREFIX = "dev.modelog"


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
