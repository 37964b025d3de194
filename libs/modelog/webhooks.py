"""Webhooks from Python: register a URL for events (CI/CD), read the delivery log, re-enable, redeliver.

import modelog
hook = modelog.webhooks.create("https://ci.example.com/hooks/modelog",
                               types=["registry.TransitionApproved"])
print(hook.secret)   # shown once: give it to the receiver to verify signatures
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from modelog._client import Connection
from modelog._gen.audit.v1 import webhooks_pb2 as pb
from modelog._gen.audit.v1 import webhooks_pb2_grpc
from modelog._time import when as _when


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    services: builtins.list[str]
    types: builtins.list[str]
    streams: builtins.list[str]
    models: builtins.list[str]
    description: str
    enabled: bool
    disabled_reason: str
    failures: int
    secret_fingerprint: str
    created_by: str
    created_at: datetime | None
    updated_at: datetime | None
    cursor: str
    secret: str = ""
    """Only right after create (or update with a new generated secret): it is never shown again."""

    @classmethod
    def of(cls, w: pb.Webhook, secret: str = "") -> Webhook:
        f = w.filter
        return cls(
            w.id,
            w.url,
            builtins.list(f.services),
            builtins.list(f.types),
            builtins.list(f.streams),
            builtins.list(f.models),
            w.description,
            w.enabled,
            w.disabled_reason,
            w.failures,
            w.secret_fingerprint,
            w.created_by,
            _when(w.created_at),
            _when(w.updated_at),
            w.cursor,
            secret,
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.secret:
            out.pop("secret")
        return out


@dataclass(frozen=True)
class Attempt:
    attempt: int
    at: datetime | None
    response_code: int
    latency_ms: float
    error: str


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: str
    event_id: str
    """The event's CloudEvents id, sent as `webhook-id` on every attempt."""
    service: str
    position: int
    event_type: str
    status: str
    kind: str
    attempts: int
    response_code: int
    latency_ms: float
    last_error: str
    created_at: datetime | None
    updated_at: datetime | None
    attempt_log: builtins.list[Attempt] = field(default_factory=list)

    @classmethod
    def of(cls, d: pb.Delivery) -> Delivery:
        return cls(
            d.id,
            d.webhook_id,
            d.event_id,
            d.service,
            d.position,
            d.event_type,
            d.status,
            d.kind,
            d.attempts,
            d.response_code,
            d.latency_ms,
            d.last_error,
            _when(d.created_at),
            _when(d.updated_at),
            [Attempt(a.attempt, _when(a.at), a.response_code, a.latency_ms, a.error) for a in d.attempt_log],
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _call(connection: Connection | None, rpc: str, request: Any) -> Any:
    if connection is None:
        from modelog._session import default

        connection = default()._online().conn
    method: Callable[..., Any] = getattr(webhooks_pb2_grpc.WebhooksStub(connection.channel), rpc)
    return method(request, timeout=120)  # raises modelog.errors (modelog._client)


def _filter(
    services: Sequence[str], types: Sequence[str], streams: Sequence[str], models: Sequence[str]
) -> pb.WebhookFilter:
    return pb.WebhookFilter(services=services, types=types, streams=streams, models=models)


def create(
    url: str,
    *,
    types: Sequence[str] = (),
    services: Sequence[str] = (),
    streams: Sequence[str] = (),
    models: Sequence[str] = (),
    secret: str | None = None,
    description: str = "",
    from_cursor: str = "now",
    connection: Connection | None = None,
) -> Webhook:
    """Register `url` for the events matching every given filter (as `modelog.subscribe`'s; `models`
    names registered models). Without `secret` one is generated: read it from the result's `.secret`,
    it is not shown again. `from_cursor`: "now" (default), "start" (all history) or a cursor."""
    request = pb.CreateWebhookRequest(
        url=url,
        filter=_filter(services, types, streams, models),
        secret=secret or "",
        description=description,
        from_cursor=from_cursor,
    )
    resp = _call(connection, "CreateWebhook", request)
    return Webhook.of(resp.webhook, resp.secret)


def get(webhook_id: str, *, connection: Connection | None = None) -> Webhook:
    return Webhook.of(_call(connection, "GetWebhook", pb.GetWebhookRequest(id=webhook_id)))


def list(include_deleted: bool = False, *, connection: Connection | None = None) -> builtins.list[Webhook]:
    resp = _call(connection, "ListWebhooks", pb.ListWebhooksRequest(include_deleted=include_deleted))
    return [Webhook.of(w) for w in resp.webhooks]


def update(
    webhook_id: str,
    *,
    url: str | None = None,
    types: Sequence[str] | None = None,
    services: Sequence[str] | None = None,
    streams: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    description: str | None = None,
    secret: str | None = None,
    new_secret: bool = False,
    connection: Connection | None = None,
) -> Webhook:
    """Change what is given. A filter part not given keeps its value; `new_secret=True` generates a
    secret (in the result's `.secret`), `secret=` sets one."""
    request = pb.UpdateWebhookRequest(id=webhook_id)
    if url is not None:
        request.update_mask.append("url")
        request.url = url
    if any(v is not None for v in (types, services, streams, models)):
        current = get(webhook_id, connection=connection)
        request.update_mask.append("filter")
        request.filter.CopyFrom(
            _filter(
                current.services if services is None else services,
                current.types if types is None else types,
                current.streams if streams is None else streams,
                current.models if models is None else models,
            )
        )
    if description is not None:
        request.update_mask.append("description")
        request.description = description
    if secret is not None or new_secret:
        request.update_mask.append("secret")
        request.secret = secret or ""
    resp = _call(connection, "UpdateWebhook", request)
    return Webhook.of(resp.webhook, resp.secret)


def enable(webhook_id: str, *, connection: Connection | None = None) -> Webhook:
    """Re-enable (after an automatic disable): delivery resumes where it stopped."""
    return Webhook.of(_call(connection, "EnableWebhook", pb.EnableWebhookRequest(id=webhook_id)))


def disable(webhook_id: str, reason: str = "", *, connection: Connection | None = None) -> Webhook:
    return Webhook.of(
        _call(connection, "DisableWebhook", pb.DisableWebhookRequest(id=webhook_id, reason=reason))
    )


def delete(webhook_id: str, *, connection: Connection | None = None) -> None:
    _call(connection, "DeleteWebhook", pb.DeleteWebhookRequest(id=webhook_id))


def deliveries(
    webhook_id: str = "",
    *,
    status: str = "",
    limit: int = 100,
    before_id: int = 0,
    connection: Connection | None = None,
) -> builtins.list[Delivery]:
    """The delivery log, newest first, each with its attempts (status: pending, retrying, delivered,
    failed)."""
    request = pb.ListDeliveriesRequest(webhook_id=webhook_id, status=status, limit=limit, before_id=before_id)
    return [Delivery.of(d) for d in _call(connection, "ListDeliveries", request).deliveries]


def redeliver(
    webhook_id: str,
    *,
    delivery_id: int = 0,
    from_cursor: str = "",
    to_cursor: str = "",
    connection: Connection | None = None,
) -> builtins.list[Delivery]:
    """Send again one delivery's event, or every matching event after `from_cursor` ("start": from the
    beginning) up to `to_cursor` (default: now). Same `webhook-id` as before."""
    request = pb.RedeliverRequest(
        webhook_id=webhook_id, delivery_id=delivery_id, from_cursor=from_cursor, to_cursor=to_cursor
    )
    return [Delivery.of(d) for d in _call(connection, "Redeliver", request).deliveries]


def test(webhook_id: str, *, connection: Connection | None = None) -> Delivery:
    """Send a ping now; the result says what the receiver answered."""
    return Delivery.of(_call(connection, "TestWebhook", pb.TestWebhookRequest(id=webhook_id)))


__all__ = [
    "Attempt",
    "Delivery",
    "Webhook",
    "create",
    "delete",
    "deliveries",
    "disable",
    "enable",
    "get",
    "list",
    "redeliver",
    "test",
    "update",
]
