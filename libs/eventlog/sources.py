"""Where projections read a log when Kafka cannot be trusted: the source service's EventLog gRPC API."""

from __future__ import annotations

import secrets
from datetime import UTC
from typing import Any, Protocol

import grpc
from opentelemetry import propagate

from eventlog.records import RecordedEvent
from eventlog.store import EventStore


class LogReader(Protocol):
    async def read(self, log: str, from_position: int, limit: int) -> list[RecordedEvent]: ...

    async def head(self, log: str) -> int: ...


class StoreReader:
    """Reads logs hosted in this process directly (a service reading its own log)."""

    def __init__(self, stores: dict[str, EventStore]) -> None:
        self.stores = stores

    async def read(self, log: str, from_position: int, limit: int) -> list[RecordedEvent]:
        return await self.stores[log].read_log(from_position, limit)

    async def head(self, log: str) -> int:
        return (await self.stores[log].head())[0]


class GrpcLogReader:
    """Reads other services' logs through EventLog.ReadLog / Head (how gaps are healed).

    `routes` names the address of each log's service; logs not named go to `target`. With
    `credentials` every channel is TLS (trusting the server's CA, presenting a client certificate
    when the credentials carry one).
    """

    def __init__(
        self,
        target: str,
        token: str | None,
        routes: dict[str, str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.target = target
        self.routes = routes or {}
        self.credentials = credentials
        self._md = [("authorization", f"Bearer {token}")] if token else []
        self._stubs: dict[str, Any] = {}
        self._channels: list[grpc.aio.Channel] = []

    def _stub(self, log: str) -> Any:
        from modelog._gen.eventlog.v1 import eventlog_pb2_grpc

        target = self.routes.get(log, self.target)
        if target not in self._stubs:
            channel = self.channel(target)
            self._channels.append(channel)
            self._stubs[target] = eventlog_pb2_grpc.EventLogStub(channel)
        return self._stubs[target]

    def channel(self, target: str) -> grpc.aio.Channel:
        """A channel to `target` as this reader connects (TLS or not); for peer calls too."""
        options = [("grpc.max_receive_message_length", 64 << 20)]
        if self.credentials is None:
            return grpc.aio.insecure_channel(target, options=options)
        return grpc.aio.secure_channel(target, self.credentials, options=options)

    async def read(self, log: str, from_position: int, limit: int) -> list[RecordedEvent]:
        from modelog._gen.eventlog.v1 import eventlog_pb2

        out: list[RecordedEvent] = []
        call = self._stub(log).ReadLog(
            eventlog_pb2.ReadLogRequest(service=log, from_position=from_position, limit=limit),
            metadata=self._metadata(poll=False),
            timeout=60,
        )
        async for batch in call:
            out.extend(
                RecordedEvent(
                    e.service,
                    e.position,
                    e.stream_id,
                    e.stream_version,
                    e.event_id,
                    e.type,
                    e.schema_version,
                    e.payload_json,
                    e.metadata_json,
                    e.recorded_at.ToDatetime(tzinfo=UTC),
                    e.prev_hash,
                    e.hash,
                )
                for e in batch.events
            )
        return out

    async def head(self, log: str) -> int:
        from modelog._gen.eventlog.v1 import eventlog_pb2

        resp = await self._stub(log).Head(
            eventlog_pb2.HeadRequest(service=log), metadata=self._metadata(poll=True), timeout=10
        )
        return int(resp.position)

    def _metadata(self, *, poll: bool) -> list[tuple[str, str]]:
        """The token, and the caller's trace context so the server's span joins the caller's trace.

        A head check outside any trace is a projection runner's once-a-second poll: it goes out as a
        W3C trace whose sampled flag is off, so the server (sampling parent-based, the SDK default)
        records nothing for it, and an idle platform exports no traces of its own polling. A heal
        (ReadLog) outside a trace stays a trace of its own: it is rare, and worth seeing."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if poll and "traceparent" not in carrier:
            carrier["traceparent"] = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"
        return [*self._md, *carrier.items()]

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


def parse_routes(spec: str) -> dict[str, str]:
    """`tracking=host:port,audit=host:port` -> {"tracking": "host:port", ...}."""
    routes = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, target = part.partition("=")
        if not sep or not name or not target:
            raise ValueError(f"bad peer {part!r}: expected service=host:port")
        routes[name.strip()] = target.strip()
    return routes
