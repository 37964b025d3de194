"""What the current request is: who calls, with which ids. Set by the interceptor, read by servicers."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from eventlog.events import Metadata


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
        )


SYSTEM = RequestContext(actor="system", roles=("admin",))
_current: ContextVar[RequestContext] = ContextVar("modelog_request", default=SYSTEM)


def current() -> RequestContext:
    return _current.get()


def bind(ctx: RequestContext) -> object:
    return _current.set(ctx)


def unbind(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
