"""The audit service's own domain events: webhook registrations (stream `webhook-<id>`).

The audit service has no other aggregate: its global views are projections of other logs. A
webhook's secret is never in an event, in clear or encrypted: it lives in a side table keyed by
webhook id and fingerprint (webhook_store.py). Why not encrypted in the event: the audit log is what
compliance bundles export, and a secret erased on delete or rotation must really be gone; an
encrypted copy would stay in every bundle and in the log forever, safe only as long as one key file.
Events carry the secret's fingerprint, so the log still says which secret was in force when.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from eventlog import DomainEvent, EventRegistry

registry = EventRegistry()


class WebhookFilterValue(BaseModel):
    """Which events a webhook receives; every non-empty part must match (as Subscribe's filter)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    services: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    models: tuple[str, ...] = ()


@registry.register
class WebhookCreated(DomainEvent):
    webhook_id: str
    url: str
    filter: WebhookFilterValue
    description: str = ""
    secret_fingerprint: str
    start: dict[str, int]
    """Deliveries begin after these positions (one per log; a log not named starts at 0)."""


@registry.register
class WebhookUpdated(DomainEvent):
    """Only what changed is set."""

    webhook_id: str
    url: str | None = None
    filter: WebhookFilterValue | None = None
    description: str | None = None
    secret_fingerprint: str | None = None


@registry.register
class WebhookDisabled(DomainEvent):
    webhook_id: str
    reason: str
    failures: int = 0
    """Consecutive failed deliveries, when the dispatcher disabled it; 0 when a person did."""


@registry.register
class WebhookEnabled(DomainEvent):
    webhook_id: str


@registry.register
class WebhookDeleted(DomainEvent):
    webhook_id: str
