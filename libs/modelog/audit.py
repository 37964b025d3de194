"""Audit from Python: signed compliance export, offline verification, event subscriptions."""

from __future__ import annotations

import heapq
import json
import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf.timestamp_pb2 import Timestamp

from modelog._client import Connection
from modelog._gen.audit.v1 import audit_pb2, audit_pb2_grpc
from modelog._gen.common.v1 import event_pb2
from modelog._gen.eventlog.v1 import eventlog_pb2
from modelog.errors import InvalidArgument
from modelog.shared.audit.cursor import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from modelog.shared.audit.verify import Outcome


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def export(
    out: str | os.PathLike[str],
    *,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
    model: str | None = None,
    connection: Connection | None = None,
) -> Path:
    """Write a signed compliance bundle of every log (events in [from_time, to_time)) to `out`.

    The file appears only once it is complete (written beside it, then renamed).
    """
    path = Path(out)
    request = audit_pb2.ExportRequest(model=model or "")
    if from_time is not None:
        request.from_time.CopyFrom(_ts(from_time))
    if to_time is not None:
        request.to_time.CopyFrom(_ts(to_time))
    conn = connection or Connection()
    partial = path.with_name(path.name + ".partial")
    try:
        stub = audit_pb2_grpc.AuditStub(conn.channel)
        with partial.open("wb") as fh:
            for chunk in stub.Export(request):
                fh.write(chunk.data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
        if connection is None:
            conn.close()
    return path


def public_key(connection: Connection | None = None) -> audit_pb2.PublicKeyResponse:
    """The platform's Ed25519 public key that signs bundles (raw bytes, PEM and key id)."""
    conn = connection or Connection()
    try:
        resp: audit_pb2.PublicKeyResponse = audit_pb2_grpc.AuditStub(conn.channel).PublicKey(
            audit_pb2.PublicKeyRequest()
        )
        return resp
    finally:
        if connection is None:
            conn.close()


def verify(path: str | os.PathLike[str], public_key: str | bytes | None = None) -> Outcome:
    """Check a bundle offline (no server, no database): signature, every chain, manifest, summary.

    `public_key` (PEM, 64 hex digits or a file holding either) pins the signer; without it the key
    inside the bundle is trusted and the outcome says so (`key_pinned` is False).
    """
    from modelog.shared.audit.keys import load_public_key  # cryptography: loaded when verifying
    from modelog.shared.audit.verify import verify_file

    key = load_public_key(public_key) if public_key is not None else None
    return verify_file(Path(path), key)


@dataclass(frozen=True)
class SubscribedEvent:
    """One committed event as a subscriber sees it; `cursor` resumes right after it."""

    service: str
    position: int
    stream_id: str
    stream_version: int
    event_id: str
    type: str
    schema_version: int
    payload: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime
    cursor: str
    raw: event_pb2.Event = field(repr=False, compare=False)
    """The event exactly as stored (canonical payload and metadata JSON, hashes)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (what `modelog events replay --json` prints)."""
        return {
            "service": self.service,
            "position": self.position,
            "stream_id": self.stream_id,
            "stream_version": self.stream_version,
            "event_id": self.event_id,
            "type": self.type,
            "schema_version": self.schema_version,
            "payload": self.payload,
            "metadata": self.metadata,
            "recorded_at": self.recorded_at.isoformat(),
            "hash": self.raw.hash.hex(),
            "cursor": self.cursor,
        }

    @property
    def qualified_type(self) -> str:
        """`registry.TransitionApproved` form."""
        return f"{self.service}.{self.type}"


def _event(e: event_pb2.Event, cursor: str) -> SubscribedEvent:
    return SubscribedEvent(
        e.service,
        e.position,
        e.stream_id,
        e.stream_version,
        e.event_id,
        e.type,
        e.schema_version,
        json.loads(e.payload_json),
        json.loads(e.metadata_json),
        e.recorded_at.ToDatetime(tzinfo=UTC),
        cursor,
        e,
    )


class Subscription(Iterator[SubscribedEvent]):
    """Iterates matching events forever (history first, then live). `cursor` is the last one seen,
    heartbeats included: save it, and pass it as `from_cursor` to carry on exactly after it."""

    def __init__(self, call: Any, conn: Connection | None, cursor: str) -> None:
        self._call, self._conn, self.cursor = call, conn, cursor
        self._pending: deque[SubscribedEvent] = deque()

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> SubscribedEvent:
        while not self._pending:
            msg = next(self._call)  # StopIteration ends the iteration too
            if msg.WhichOneof("kind") == "events":
                batch = msg.events
                self._pending.extend(_event(e, c) for e, c in zip(batch.events, batch.cursors, strict=True))
            else:
                self.cursor = msg.cursor
        event = self._pending.popleft()
        self.cursor = event.cursor
        return event

    def close(self) -> None:
        self._call.cancel()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def subscribe(
    types: Sequence[str] = (),
    *,
    from_cursor: str | None = None,
    services: Sequence[str] = (),
    streams: Sequence[str] = (),
    heartbeat_s: float = 5.0,
    connection: Connection | None = None,
) -> Subscription:
    """Events matching every given filter: `types` as `registry.TransitionApproved` (or bare
    `TransitionApproved`), `services`, `streams` (exact ids or `prefix*`).

    `from_cursor`: a cursor from an earlier event (resume exactly after it), "start" (all history), or
    None / "now" (only events committed from now on). Never drops an event: a slow loop slows the
    server down instead.
    """
    conn = connection or Connection()
    request = audit_pb2.SubscribeRequest(
        services=list(services),
        types=list(types),
        streams=list(streams),
        from_cursor=from_cursor or "now",
        heartbeat_s=heartbeat_s,
    )
    call = audit_pb2_grpc.AuditStub(conn.channel).Subscribe(request)
    return Subscription(call, None if connection is not None else conn, request.from_cursor)


def _positions(cursor: str) -> dict[str, int]:
    try:
        return decode_cursor(cursor)
    except InvalidArgument as exc:
        raise ValueError(f"{cursor!r}: {exc}") from None


def _matches(e: event_pb2.Event, types: Sequence[str], streams: Sequence[str]) -> bool:
    if types and e.type not in types and f"{e.service}.{e.type}" not in types:
        return False
    sid = e.stream_id
    return not streams or any(sid.startswith(s[:-1]) if s.endswith("*") else sid == s for s in streams)


def replay(
    from_cursor: str,
    to_cursor: str | None = None,
    *,
    types: Sequence[str] = (),
    services: Sequence[str] = (),
    streams: Sequence[str] = (),
    connection: Connection | None = None,
) -> Iterator[SubscribedEvent]:
    """The events after `from_cursor` ("start": from the beginning) up to and including `to_cursor`
    (default: each log's head when called), every log merged in recorded-at order. Each event's
    `cursor` resumes right after it, as with `subscribe`."""
    start = {} if from_cursor in ("", "start") else _positions(from_cursor)
    conn = connection or Connection()
    try:
        heads = {h.service: h.position for h in conn.eventlog.ListLogs(eventlog_pb2.ListLogsRequest()).logs}
        end = _positions(to_cursor) if to_cursor else heads
        logs = [n for n in heads if (not services or n in services) and n in end]
        cursor = {n: start.get(n, 0) for n in logs}

        def read(log: str) -> Iterator[event_pb2.Event]:
            position, last = cursor[log] + 1, end[log]
            while position <= last:
                request = eventlog_pb2.ReadLogRequest(
                    service=log, from_position=position, limit=min(_PAGE, last - position + 1)
                )
                page = [e for resp in conn.eventlog.ReadLog(request) for e in resp.events]
                if not page:
                    return
                yield from page
                position = page[-1].position + 1

        merged = heapq.merge(
            *(read(n) for n in logs),
            key=lambda e: (e.recorded_at.seconds, e.recorded_at.nanos, e.service, e.position),
        )
        for e in merged:
            cursor[e.service] = e.position
            if _matches(e, types, streams):
                yield _event(e, encode_cursor(cursor))
    finally:
        if connection is None:
            conn.close()


_PAGE = 10_000

__all__ = ["SubscribedEvent", "Subscription", "export", "public_key", "replay", "subscribe", "verify"]
