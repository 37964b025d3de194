"""gRPC Webhooks: requests become commands for the webhook decider; replies come from the view and
the delivery log. No rule lives here; what this layer adds is I/O the decider must not do: the
address check (DNS), secrets, the logs' heads for "now", and sending redeliveries and pings."""

from __future__ import annotations

import hashlib
import heapq
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import asyncpg
import grpc

from eventlog import (
    CommandPath,
    DomainEvent,
    EventStore,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RecordedEvent,
)
from eventlog.cloudevents import to_structured
from eventlog.sources import LogReader
from modelog._gen.audit.v1 import webhooks_pb2 as pb
from modelog._gen.audit.v1 import webhooks_pb2_grpc
from modelog.shared.audit.cursor import decode_cursor, encode_cursor
from modelog_platform import context
from modelog_services.audit import ssrf
from modelog_services.audit import webhook_store as db
from modelog_services.audit.dispatcher import ModelMatch, Policy, event_filter
from modelog_services.audit.domain import (
    Command,
    CreateWebhook,
    DeleteWebhook,
    DisableWebhook,
    EnableWebhook,
    UpdateWebhook,
    check_filter,
    check_url,
    stream_id,
    webhook,
)
from modelog_services.audit.events import WebhookFilterValue, registry
from modelog_services.audit.webhook_http import (
    fingerprint,
    generate_secret,
    secret_key,
    signed_headers,
)

MAX_REDELIVER = 10_000
STATUSES = ("pending", "retrying", "delivered", "failed")
_MASK = ("url", "filter", "description", "secret")


def _id(value: str) -> str:
    if not value or len(value) > 64 or not value.replace("-", "").replace("_", "").isalnum():
        raise InvalidArgument.field("id", "a webhook id (from CreateWebhook or ListWebhooks) is required")
    return value


def _ts(msg: object, when: datetime) -> None:
    msg.FromDatetime(when)  # type: ignore[attr-defined]


def _filter(f: pb.WebhookFilter) -> WebhookFilterValue:
    return WebhookFilterValue(
        services=tuple(f.services), types=tuple(f.types), streams=tuple(f.streams), models=tuple(f.models)
    )


def webhook_proto(row: db.WebhookRow, positions: dict[str, int] | None) -> pb.Webhook:
    f = row.filter
    msg = pb.Webhook(
        id=row.webhook_id,
        url=row.url,
        filter=pb.WebhookFilter(services=f.services, types=f.types, streams=f.streams, models=f.models),
        description=row.description,
        enabled=row.status == "enabled",
        disabled_reason=row.disabled_reason,
        failures=row.failures,
        secret_fingerprint=row.secret_fingerprint,
        created_by=row.created_by,
        cursor=encode_cursor(positions if positions is not None else row.start),
    )
    _ts(msg.created_at, row.created_at)
    _ts(msg.updated_at, row.updated_at)
    return msg


def delivery_proto(r: asyncpg.Record, attempts: Sequence[asyncpg.Record] = ()) -> pb.Delivery:
    msg = pb.Delivery(
        id=r["id"],
        webhook_id=r["webhook_id"],
        event_id=r["event_id"],
        service=r["service"],
        position=r["position"],
        event_type=r["event_type"],
        status=r["status"],
        kind=r["kind"],
        attempts=r["attempts"],
        response_code=r["response_code"],
        latency_ms=r["latency_ms"],
        last_error=r["last_error"],
    )
    _ts(msg.created_at, r["created_at"])
    _ts(msg.updated_at, r["updated_at"])
    for a in attempts:
        item = msg.attempt_log.add(
            attempt=a["attempt"],
            response_code=a["response_code"],
            latency_ms=a["latency_ms"],
            error=a["error"],
        )
        _ts(item.at, a["at"])
    return msg


class WebhooksServicer(webhooks_pb2_grpc.WebhooksServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        stores: Mapping[str, EventStore],
        reader: LogReader,
        logs: Sequence[str],
        policy: Policy,
    ) -> None:
        self.pool, self.stores, self.reader, self.logs, self.policy = pool, stores, reader, logs, policy
        self.audit = stores["audit"]
        self.commands = CommandPath(self.audit, events=registry)

    # ------------------------------------------------------------ helpers

    async def _row(self, webhook_id: str, *, deleted_ok: bool = False) -> db.WebhookRow:
        row = await db.get(self.pool, _id(webhook_id))
        if row is None or (row.status == "deleted" and not deleted_ok):
            raise NotFound(f"no webhook {webhook_id!r} (list them with `modelog webhooks list`)")
        return row

    async def _reply(self, webhook_id: str) -> pb.Webhook:
        row = await self._row(webhook_id, deleted_ok=True)
        positions, _ = await db.cursor(self.pool, webhook_id)
        return webhook_proto(row, positions)

    async def _decide(self, webhook_id: str, command: Command) -> Sequence[DomainEvent]:
        rc = context.current()
        try:
            outcome = await self.commands.execute(webhook, stream_id(webhook_id), command, rc.metadata())
        except NotFound:
            raise NotFound(f"no webhook {webhook_id!r} (list them with `modelog webhooks list`)") from None
        return outcome.events

    async def _secret(self, value: str, field: str = "secret") -> str:
        secret = value or generate_secret()
        secret_key(secret, field)
        return secret

    async def _start(self, cursor: str) -> dict[str, int]:
        if cursor in ("", "now"):
            return {log: await self.reader.head(log) for log in self.logs}
        if cursor == "start":
            return {}
        return decode_cursor(cursor)

    # ------------------------------------------------------------ registrations

    async def CreateWebhook(
        self, request: pb.CreateWebhookRequest, context_: grpc.aio.ServicerContext
    ) -> pb.CreateWebhookResponse:
        url = check_url(request.url)
        flt = check_filter(_filter(request.filter), self.logs)
        secret = await self._secret(request.secret)
        await ssrf.check(url, self.policy.allow)
        start = await self._start(request.from_cursor)
        key = context.current().idempotency_key
        wid = hashlib.sha256(f"webhook\0{key}".encode()).hexdigest()[:16] if key else uuid.uuid4().hex[:16]
        fp = fingerprint(secret)
        # The secret first: a webhook is never visible without it. A failed append leaves an orphan
        # row keyed by an id nobody has, which the next create with this key reuses.
        await db.put_secret(self.pool, wid, fp, secret)
        await self._decide(wid, CreateWebhook(wid, url, flt, request.description, fp, start))
        row = await self._row(wid)
        if row.secret_fingerprint != fp:  # a retried call: the first attempt's secret is the one
            secret = await db.secret(self.pool, wid, row.secret_fingerprint) or ""
            await db.prune_secrets(self.pool, wid, row.secret_fingerprint)
        return pb.CreateWebhookResponse(webhook=webhook_proto(row, None), secret=secret)

    async def GetWebhook(
        self, request: pb.GetWebhookRequest, context_: grpc.aio.ServicerContext
    ) -> pb.Webhook:
        await self._row(request.id)
        return await self._reply(request.id)

    async def ListWebhooks(
        self, request: pb.ListWebhooksRequest, context_: grpc.aio.ServicerContext
    ) -> pb.ListWebhooksResponse:
        rows = await db.list_all(self.pool, request.include_deleted)
        out = pb.ListWebhooksResponse()
        for row in rows:
            positions, _ = await db.cursor(self.pool, row.webhook_id)
            out.webhooks.append(webhook_proto(row, positions))
        return out

    async def UpdateWebhook(
        self, request: pb.UpdateWebhookRequest, context_: grpc.aio.ServicerContext
    ) -> pb.UpdateWebhookResponse:
        wid = _id(request.id)
        mask = set(request.update_mask)
        unknown = sorted(mask - set(_MASK))
        if unknown or not mask:
            raise InvalidArgument.field(
                "update_mask",
                f"name what to change: any of {', '.join(_MASK)}" + (f"; not {unknown}" if unknown else ""),
            )
        await self._row(wid)
        url = check_url(request.url) if "url" in mask else None
        if url is not None:
            await ssrf.check(url, self.policy.allow)
        flt = check_filter(_filter(request.filter), self.logs) if "filter" in mask else None
        secret = await self._secret(request.secret) if "secret" in mask else ""
        fp = fingerprint(secret) if secret else None
        if secret and fp:
            await db.put_secret(self.pool, wid, fp, secret)
        command = UpdateWebhook(url, flt, request.description if "description" in mask else None, fp)
        await self._decide(wid, command)
        row = await self._row(wid)
        await db.prune_secrets(self.pool, wid, row.secret_fingerprint)
        generated = secret if "secret" in mask and not request.secret else ""
        return pb.UpdateWebhookResponse(webhook=await self._reply(wid), secret=generated)

    async def DisableWebhook(
        self, request: pb.DisableWebhookRequest, context_: grpc.aio.ServicerContext
    ) -> pb.Webhook:
        await self._decide(_id(request.id), DisableWebhook(request.reason or "disabled by hand"))
        return await self._reply(request.id)

    async def EnableWebhook(
        self, request: pb.EnableWebhookRequest, context_: grpc.aio.ServicerContext
    ) -> pb.Webhook:
        row = await self._row(request.id)
        await ssrf.check(row.url, self.policy.allow)
        await self._decide(row.webhook_id, EnableWebhook())
        return await self._reply(row.webhook_id)

    async def DeleteWebhook(
        self, request: pb.DeleteWebhookRequest, context_: grpc.aio.ServicerContext
    ) -> pb.DeleteWebhookResponse:
        await self._decide(_id(request.id), DeleteWebhook())
        await db.prune_secrets(self.pool, request.id, None)
        return pb.DeleteWebhookResponse()

    # ------------------------------------------------------------ deliveries

    async def ListDeliveries(
        self, request: pb.ListDeliveriesRequest, context_: grpc.aio.ServicerContext
    ) -> pb.ListDeliveriesResponse:
        if request.status and request.status not in STATUSES:
            raise InvalidArgument.field("status", f"one of {', '.join(STATUSES)} (or empty for all)")
        if request.limit < 0 or request.limit > 1000:
            raise InvalidArgument.field("limit", "between 1 and 1000 (0: 100)")
        if request.webhook_id:
            await self._row(request.webhook_id, deleted_ok=True)
        rows, attempts = await db.deliveries(
            self.pool, request.webhook_id, request.status, request.limit or 100, request.before_id
        )
        return pb.ListDeliveriesResponse(
            deliveries=[delivery_proto(r, attempts.get(r["id"], ())) for r in rows]
        )

    async def _send(
        self, row: db.WebhookRow, events: Sequence[RecordedEvent], kind: str
    ) -> list[pb.Delivery]:
        secret = await db.secret(self.pool, row.webhook_id, row.secret_fingerprint)
        if secret is None:
            raise FailedPrecondition(f"webhook {row.webhook_id!r} has no secret; set one with UpdateWebhook")
        key = secret_key(secret)
        sender = self.policy.sender(row.url)
        out = []
        try:
            for ev in events:
                body = to_structured(ev)
                started = await db.start_delivery(self.pool, row.webhook_id, ev, kind)
                resp = await sender.post(body, signed_headers(key, ev.event_id, body))
                status = "delivered" if resp.ok else "failed"
                await db.record_attempt(
                    self.pool, started.delivery_id, 1, status, resp.status, resp.latency_ms, resp.error
                )
                r = await db.delivery(self.pool, started.delivery_id)
                assert r is not None
                out.append(delivery_proto(r))
        finally:
            await sender.close()
        return out

    async def Redeliver(
        self, request: pb.RedeliverRequest, context_: grpc.aio.ServicerContext
    ) -> pb.RedeliverResponse:
        row = await self._row(request.webhook_id)
        if request.delivery_id:
            if request.from_cursor or request.to_cursor:
                raise InvalidArgument.field(
                    "delivery_id", "give a delivery id or a range of cursors, not both"
                )
            d = await db.delivery(self.pool, request.delivery_id)
            if d is None or d["webhook_id"] != row.webhook_id or d["position"] == 0:
                raise NotFound(
                    f"webhook {row.webhook_id!r} has no delivery {request.delivery_id} of a logged event"
                )
            found = await self.reader.read(d["service"], d["position"], 1)
            events = [e for e in found if e.position == d["position"]]
        elif request.from_cursor:
            events = await self._range(row, request.from_cursor, request.to_cursor)
        else:
            raise InvalidArgument.field(
                "from_cursor", "give a delivery id, or a range: from_cursor ('start' or a cursor)"
            )
        sent = await self._send(row, events, "redelivery")
        ok = sum(1 for d in sent if d.status == "delivered")
        return pb.RedeliverResponse(deliveries=sent, delivered=ok, failed=len(sent) - ok)

    async def _range(self, row: db.WebhookRow, from_cursor: str, to_cursor: str) -> list[RecordedEvent]:
        start = {} if from_cursor == "start" else decode_cursor(from_cursor)
        end = (
            decode_cursor(to_cursor) if to_cursor else {log: await self.reader.head(log) for log in self.logs}
        )
        flt = event_filter(row.filter)
        models = ModelMatch(row.filter.models) if row.filter.models else None
        if models is not None and "registry" in self.logs:
            await models.seed(self.reader, start.get("registry", 0))
        logs = [log for log in self.logs if log in end and (not flt.services or log in flt.services)]
        per_log: list[list[RecordedEvent]] = []
        total = 0
        for log in logs:
            picked: list[RecordedEvent] = []
            position, last = start.get(log, 0) + 1, end[log]
            while position <= last:
                batch = await self.reader.read(log, position, min(5000, last - position + 1))
                if not batch:
                    break
                for ev in batch:
                    if models is not None:
                        models.see(ev)
                    if ev.position <= last and flt.match(ev) and (models is None or models.match(ev)):
                        picked.append(ev)
                position = batch[-1].position + 1
                if total + len(picked) > MAX_REDELIVER:
                    raise InvalidArgument.field(
                        "to_cursor",
                        f"more than {MAX_REDELIVER:,} matching events in range; redeliver it in parts",
                    )
            total += len(picked)
            per_log.append(picked)
        return list(heapq.merge(*per_log, key=_order))

    async def TestWebhook(
        self, request: pb.TestWebhookRequest, context_: grpc.aio.ServicerContext
    ) -> pb.Delivery:
        row = await self._row(request.id)
        rc = context.current()
        ping = RecordedEvent(
            "audit",
            0,
            stream_id(row.webhook_id),
            0,
            str(uuid.uuid4()),
            "WebhookPing",
            1,
            json.dumps({"webhook_id": row.webhook_id, "message": "ping from modelog"}),
            json.dumps({"actor": rc.actor}),
            datetime.now(UTC),
            b"",
            b"",
        )
        return (await self._send(row, [ping], "test"))[0]


def _order(ev: RecordedEvent) -> tuple[datetime, str, int]:
    return (ev.recorded_at, ev.log, ev.position)
