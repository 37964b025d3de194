"""The webhook aggregate as a decider: register, change, disable, re-enable, delete.

Pure: the id, the secret's fingerprint and the start positions come in on the command; the address
check that needs DNS (ssrf.py) runs in the servicer before deciding and again at every delivery.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from typing import Literal
from urllib.parse import urlsplit

from eventlog import AlreadyExists, Decider, DomainEvent, InvalidArgument, NotFound

from .events import (
    WebhookCreated,
    WebhookDeleted,
    WebhookDisabled,
    WebhookEnabled,
    WebhookFilterValue,
    WebhookUpdated,
)

MAX_URL = 2000
MAX_DESCRIPTION = 1000
MAX_REASON = 500
MAX_FILTER_ITEMS = 100
_TYPE = re.compile(r"^(?:[a-z][a-z0-9_]*\.)?[A-Za-z][A-Za-z0-9_]*\Z")

Status = Literal["none", "enabled", "disabled", "deleted"]


def stream_id(webhook_id: str) -> str:
    return f"webhook-{webhook_id}"


def check_url(url: str, field: str = "url") -> str:
    """Shape only (http/https, a host, no credentials); where it points is ssrf.py's job."""
    if not url or len(url) > MAX_URL:
        raise InvalidArgument.field(field, f"a URL of 1..{MAX_URL} characters is required")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidArgument.field(field, f"{url[:200]!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument.field(field, f"only http and https URLs are allowed, not {parts.scheme!r}")
    if not parts.hostname:
        raise InvalidArgument.field(field, f"{url[:200]!r} names no host")
    if parts.username or parts.password:
        raise InvalidArgument.field(field, "credentials in the URL would be logged; use the signing secret")
    if port == 0:
        raise InvalidArgument.field(field, "port 0 is not a port")
    return url


def check_filter(flt: WebhookFilterValue, logs: Sequence[str], field: str = "filter") -> WebhookFilterValue:
    for name in ("services", "types", "streams", "models"):
        if len(getattr(flt, name)) > MAX_FILTER_ITEMS:
            raise InvalidArgument.field(f"{field}.{name}", f"at most {MAX_FILTER_ITEMS} entries")
    unknown = sorted(set(flt.services) - set(logs))
    if unknown:
        raise InvalidArgument.field(
            f"{field}.services", f"unknown: {', '.join(unknown)}; logs: {', '.join(logs)}"
        )
    for t in flt.types:
        if not _TYPE.match(t):
            raise InvalidArgument.field(
                f"{field}.types", f"{t[:100]!r} is not `service.Type` (registry.TransitionApproved) or `Type`"
            )
    for s in flt.streams:
        if not s or s == "*" or len(s) > 200:
            raise InvalidArgument.field(f"{field}.streams", f"{s!r}: a stream id or a prefix ending in *")
    for m in flt.models:
        if not m or len(m) > 250:
            raise InvalidArgument.field(f"{field}.models", f"{m!r} is not a model name")
    if flt.models and flt.services and "registry" not in flt.services:
        raise InvalidArgument.field(
            f"{field}.models", "models are in the registry log, which services leaves out"
        )
    return flt


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class CreateWebhook:
    webhook_id: str
    url: str
    filter: WebhookFilterValue
    description: str
    secret_fingerprint: str
    start: dict[str, int]


@dataclass(frozen=True)
class UpdateWebhook:
    url: str | None = None
    filter: WebhookFilterValue | None = None
    description: str | None = None
    secret_fingerprint: str | None = None


@dataclass(frozen=True)
class DisableWebhook:
    reason: str
    failures: int = 0


@dataclass(frozen=True)
class EnableWebhook:
    pass


@dataclass(frozen=True)
class DeleteWebhook:
    pass


Command = CreateWebhook | UpdateWebhook | DisableWebhook | EnableWebhook | DeleteWebhook


@dataclass(frozen=True)
class WebhookState:
    status: Status = "none"
    webhook_id: str = ""
    url: str = ""
    filter: WebhookFilterValue = dc_field(default_factory=WebhookFilterValue)
    description: str = ""
    secret_fingerprint: str = ""


def _exists(state: WebhookState) -> None:
    if state.status in ("none", "deleted"):
        raise NotFound(f"no webhook {state.webhook_id!r}" if state.webhook_id else "no such webhook")


def decide(command: Command, state: WebhookState) -> list[DomainEvent]:
    if isinstance(command, CreateWebhook):
        if state.status != "none":
            raise AlreadyExists(f"webhook {command.webhook_id!r} already exists")
        if len(command.description) > MAX_DESCRIPTION:
            raise InvalidArgument.field("description", f"at most {MAX_DESCRIPTION} characters")
        return [
            WebhookCreated(
                webhook_id=command.webhook_id,
                url=check_url(command.url),
                filter=command.filter,
                description=command.description,
                secret_fingerprint=command.secret_fingerprint,
                start=command.start,
            )
        ]
    _exists(state)
    wid = state.webhook_id
    if isinstance(command, UpdateWebhook):
        if command.description is not None and len(command.description) > MAX_DESCRIPTION:
            raise InvalidArgument.field("description", f"at most {MAX_DESCRIPTION} characters")
        url = check_url(command.url) if command.url is not None and command.url != state.url else None
        flt = command.filter if command.filter is not None and command.filter != state.filter else None
        desc = command.description if command.description not in (None, state.description) else None
        fp = command.secret_fingerprint
        fp = fp if fp is not None and fp != state.secret_fingerprint else None
        if url is None and flt is None and desc is None and fp is None:
            return []
        return [WebhookUpdated(webhook_id=wid, url=url, filter=flt, description=desc, secret_fingerprint=fp)]
    if isinstance(command, DisableWebhook):
        if len(command.reason) > MAX_REASON:
            raise InvalidArgument.field("reason", f"at most {MAX_REASON} characters")
        if state.status == "disabled":
            return []
        return [
            WebhookDisabled(
                webhook_id=wid, reason=command.reason or "disabled by hand", failures=command.failures
            )
        ]
    if isinstance(command, EnableWebhook):
        return [] if state.status == "enabled" else [WebhookEnabled(webhook_id=wid)]
    return [WebhookDeleted(webhook_id=wid)]


def evolve(state: WebhookState, event: DomainEvent) -> WebhookState:
    if isinstance(event, WebhookCreated):
        return WebhookState(
            "enabled", event.webhook_id, event.url, event.filter, event.description, event.secret_fingerprint
        )
    if isinstance(event, WebhookUpdated):
        return replace(
            state,
            url=event.url if event.url is not None else state.url,
            filter=event.filter if event.filter is not None else state.filter,
            description=event.description if event.description is not None else state.description,
            secret_fingerprint=(
                event.secret_fingerprint if event.secret_fingerprint is not None else state.secret_fingerprint
            ),
        )
    if isinstance(event, WebhookDisabled):
        return replace(state, status="disabled")
    if isinstance(event, WebhookEnabled):
        return replace(state, status="enabled")
    if isinstance(event, WebhookDeleted):
        return replace(state, status="deleted")
    return state


webhook: Decider[Command, WebhookState] = Decider(WebhookState(), decide, evolve)
