"""gRPC Audit servicer: translates requests to the export and subscription machinery; no rules here."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from datetime import UTC

import grpc

from eventlog import EventStore, InvalidArgument, RecordedEvent
from eventlog.sources import LogReader
from modelog._gen.audit.v1 import audit_pb2, audit_pb2_grpc
from modelog._gen.common.v1 import event_pb2
from modelog.shared.audit.cursor import decode_cursor, encode_cursor
from modelog.shared.audit.keys import public_pem
from modelog.shared.hashchain import micros
from modelog_platform.eventlog_api import to_proto
from modelog_services.audit.export import Scope, export_bundle
from modelog_services.audit.history import HistoryCache, serialize
from modelog_services.audit.signing import SigningKey
from modelog_services.audit.subscribe import Filter, subscribe

_PROTO_CACHE = 20_000


def _heartbeat(cursor: str) -> audit_pb2.SubscribeResponse:
    msg = audit_pb2.SubscribeResponse(cursor=cursor)
    msg.heartbeat.at.GetCurrentTime()
    return msg


def add_to_server(servicer: AuditServicer, server: grpc.aio.Server) -> None:
    """The generated registration, except that Subscribe may yield ready bytes (cached history)."""
    handlers = {
        "Export": grpc.unary_stream_rpc_method_handler(
            servicer.Export,
            request_deserializer=audit_pb2.ExportRequest.FromString,
            response_serializer=audit_pb2.ExportChunk.SerializeToString,
        ),
        "PublicKey": grpc.unary_unary_rpc_method_handler(
            servicer.PublicKey,
            request_deserializer=audit_pb2.PublicKeyRequest.FromString,
            response_serializer=audit_pb2.PublicKeyResponse.SerializeToString,
        ),
        "Subscribe": grpc.unary_stream_rpc_method_handler(
            servicer.Subscribe,
            request_deserializer=audit_pb2.SubscribeRequest.FromString,
            response_serializer=serialize,
        ),
    }
    service = audit_pb2.DESCRIPTOR.services_by_name["Audit"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)


class AuditServicer(audit_pb2_grpc.AuditServicer):
    def __init__(
        self, stores: Mapping[str, EventStore], reader: LogReader, logs: list[str], key: SigningKey
    ) -> None:
        self.stores, self.reader, self.logs, self.key = stores, reader, logs, key
        self._protos: OrderedDict[tuple[str, int], event_pb2.Event] = OrderedDict()
        self.history = HistoryCache(reader, to_proto)

    def _proto(self, ev: RecordedEvent) -> event_pb2.Event:
        """Subscribers replaying the same history share one conversion per event (a small LRU)."""
        key = (ev.log, ev.position)
        cached = self._protos.get(key)
        if cached is None:
            cached = self._protos[key] = to_proto(ev)
            if len(self._protos) > _PROTO_CACHE:
                self._protos.popitem(last=False)
        return cached

    async def Export(
        self, request: audit_pb2.ExportRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[audit_pb2.ExportChunk]:
        scope = Scope(
            micros(request.from_time.ToDatetime(tzinfo=UTC)) if request.HasField("from_time") else None,
            micros(request.to_time.ToDatetime(tzinfo=UTC)) if request.HasField("to_time") else None,
            request.model,
        )
        if scope.from_us is not None and scope.to_us is not None and scope.to_us <= scope.from_us:
            raise InvalidArgument.field("to_time", "must be after from_time")
        async for data in export_bundle(self.reader, self.logs, self.key, scope):
            yield audit_pb2.ExportChunk(data=data)

    async def PublicKey(
        self, request: audit_pb2.PublicKeyRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.PublicKeyResponse:
        return audit_pb2.PublicKeyResponse(
            public_key=self.key.raw_public, pem=public_pem(self.key.public), key_id=self.key.key_id
        )

    async def Subscribe(
        self, request: audit_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[audit_pb2.SubscribeResponse]:
        unknown = sorted(set(request.services) - set(self.logs))
        if unknown:
            raise InvalidArgument.field(
                "services", f"unknown: {', '.join(unknown)}; logs: {', '.join(self.logs)}"
            )
        if request.heartbeat_s < 0 or request.heartbeat_s > 3600:
            raise InvalidArgument.field("heartbeat_s", "must be between 0 (default 5) and 3600 seconds")
        if request.from_cursor == "now":
            start = {log: await self.reader.head(log) for log in self.logs}
        elif request.from_cursor not in ("", "start"):
            start = decode_cursor(request.from_cursor)
        else:
            start = {}
        flt = Filter(frozenset(request.services), frozenset(request.types), tuple(request.streams))
        beat = request.heartbeat_s or 5.0
        loop = asyncio.get_running_loop()
        position = {log: start.get(log, 0) for log in self.logs if not flt.services or log in flt.services}
        last = loop.time()

        def due() -> bytes | None:
            nonlocal last
            if loop.time() - last < beat:
                return None
            last = loop.time()
            return _heartbeat(encode_cursor(position)).SerializeToString()

        async for data in self.history.replay(position, flt, due):
            last = loop.time()
            yield data  # type: ignore[misc]  # bytes: Subscribe's serializer passes them through
        async for events, cursors, cursor in subscribe(
            self.stores, self.reader, self.logs, position, flt, beat
        ):
            if events:
                batch = audit_pb2.EventBatch(events=[self._proto(ev) for ev in events], cursors=cursors)
                msg = audit_pb2.SubscribeResponse(events=batch, cursor=cursor)
            else:
                msg = _heartbeat(cursor)
            yield msg  # grpc.aio awaits the write before asking for the next: back-pressure
