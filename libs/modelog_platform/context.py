"""What the current request is: who calls, with which ids. Set by the interceptor, read by servicers."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from eventlog.events import Metadata, Origin
from modelog_platform.authz import Access, Perm, Visible


@dataclass(frozen=True)
class RequestContext:
    actor: str
    roles: tuple[str, ...] = ()
    request_id: str | None = None
    correlation_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    idempotency_key: str | None = None
    method: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    access: Access | None = None
    """What the caller may do (its roles and grants), checked by the interceptor before the handler."""
    perms: frozenset[Perm] = frozenset()
    """What the caller holds where this request acts (the permission table's resource)."""
    origin: Origin | None = None
    """Imported history: where and when the fact really happened (admins only, see the interceptor)."""

    def metadata(self, *, causation_id: str | None = None, idempotency_key: str | None = None) -> Metadata:
        """Event metadata for an append made on behalf of this request."""
        return Metadata(
            actor=self.actor,
            request_id=self.request_id,
            correlation_id=self.correlation_id or self.request_id,
            causation_id=causation_id,
            traceparent=self.traceparent,
            tracestate=self.tracestate,
            idempotency_key=idempotency_key or self.idempotency_key,
            origin=self.origin,
        )


SYSTEM = RequestContext(actor="system", roles=("admin",), perms=frozenset(Perm))
_current: ContextVar[RequestContext] = ContextVar("modelog_request", default=SYSTEM)


def current() -> RequestContext:
    return _current.get()


def bind(ctx: RequestContext) -> object:
    return _current.set(ctx)


def unbind(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def visible(kind: str) -> Visible | None:
    """What a list of `kind` may show the caller (None: everything), from the permission check."""
    access = _current.get().access
    return access.visible(kind) if access is not None else None
