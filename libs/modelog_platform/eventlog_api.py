"""gRPC EventLog: read, head and verify the logs this process hosts. Consumers heal gaps through it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import EventStore, InvalidArgument, NotFound, RecordedEvent
from modelog._gen.common.v1 import event_pb2
from modelog._gen.eventlog.v1 import eventlog_pb2, eventlog_pb2_grpc

DEFAULT_LIMIT = 1_000
MAX_LIMIT = 100_000
_PAGE = 2_000


def to_proto(ev: RecordedEvent) -> event_pb2.Event:
    ts = Timestamp()
    ts.FromDatetime(ev.recorded_at)
    return event_pb2.Event(
        service=ev.log,
        position=ev.position,
        stream_id=ev.stream_id,
        stream_version=ev.stream_version,
        event_id=ev.event_id,
        type=ev.type,
        schema_version=ev.schema_version,
        payload_json=ev.payload_json,
        metadata_json=ev.metadata_json,
        recorded_at=ts,
        prev_hash=ev.prev_hash,
        hash=ev.hash,
    )


class EventLogServicer(eventlog_pb2_grpc.EventLogServicer):
    def __init__(self, stores: Mapping[str, EventStore]) -> None:
        self.stores = stores

    def _store(self, service: str) -> EventStore:
        if not service:
            raise InvalidArgument.field("service", f"required; one of: {', '.join(sorted(self.stores))}")
        store = self.stores.get(service)
        if store is None:
            raise NotFound(
                f"this process hosts no log named {service!r}; it hosts: {', '.join(sorted(self.stores))}"
            )
        return store

    async def _head(self, service: str) -> eventlog_pb2.HeadResponse:
        position, digest, at = await self._store(service).head()
        resp = eventlog_pb2.HeadResponse(service=service, position=position, hash=digest)
        if at is not None:
            resp.last_recorded_at.FromDatetime(at)
        return resp

    async def ListLogs(
        self, request: eventlog_pb2.ListLogsRequest, context: grpc.aio.ServicerContext
    ) -> eventlog_pb2.ListLogsResponse:
        return eventlog_pb2.ListLogsResponse(logs=[await self._head(s) for s in sorted(self.stores)])

    async def Head(
        self, request: eventlog_pb2.HeadRequest, context: grpc.aio.ServicerContext
    ) -> eventlog_pb2.HeadResponse:
        return await self._head(request.service)

    async def ReadLog(
        self, request: eventlog_pb2.ReadLogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[eventlog_pb2.ReadLogResponse]:
        store = self._store(request.service)
        if request.from_position < 0:
            raise InvalidArgument.field("from_position", f"must be >= 0 (got {request.from_position})")
        if request.limit < 0 or request.limit > MAX_LIMIT:
            raise InvalidArgument.field(
                "limit",
                f"must be between 0 and {MAX_LIMIT:,} (got {request.limit:,}); "
                "page with from_position for more",
            )
        remaining = request.limit or DEFAULT_LIMIT
        position = max(1, request.from_position)
        while remaining > 0:
            page = await store.read_log(position, min(_PAGE, remaining))
            if page:
                yield eventlog_pb2.ReadLogResponse(events=[to_proto(ev) for ev in page])
            if len(page) < min(_PAGE, remaining):
                return
            remaining -= len(page)
            position = page[-1].position + 1

    async def Tail(
        self, request: eventlog_pb2.TailRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[event_pb2.Event]:
        store = self._store(request.service)
        if request.from_position < 0:
            raise InvalidArgument.field("from_position", f"must be >= 0 (got {request.from_position})")
        start = request.from_position or (await store.head())[0] + 1
        async for batch in store.tail_batches(start, _PAGE):
            for ev in batch:
                yield to_proto(ev)

    async def Verify(
        self, request: eventlog_pb2.VerifyRequest, context: grpc.aio.ServicerContext
    ) -> eventlog_pb2.VerifyResponse:
        store = self._store(request.service)
        report = await store.verify()
        return eventlog_pb2.VerifyResponse(
            service=request.service,
            ok=report.ok,
            events_checked=report.events_checked,
            first_bad_position=report.first_bad_position,
            reason=report.reason,
            head_hash=report.head_hash,
        )
