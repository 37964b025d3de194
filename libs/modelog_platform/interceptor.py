"""One server interceptor for every service: request ids, auth, trace spans and error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import unquote

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from pydantic import ValidationError

from eventlog.errors import InvalidArgument, ModelogError, PermissionDenied, Unauthenticated, Unavailable
from eventlog.events import Origin
from modelog_platform import context
from modelog_platform.authz import Access, Authorizer, Resource, Rule
from modelog_platform.grpc_errors import from_validation_error, to_status
from modelog_platform.identity import TokenAuthority, peer_host

log = logging.getLogger("modelog.grpc")
tracer = trace.get_tracer("modelog.grpc")

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_ID = re.compile(r"^[\x21-\x7e]{1,128}\Z")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z")


def _metadata(details: grpc.HandlerCallDetails) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in details.invocation_metadata or ():
        if isinstance(value, bytes):
            continue  # binary headers (-bin) carry nothing we read
        out[key.lower()] = value
    return out


def _checked_id(md: dict[str, str], key: str) -> str | None:
    value = md.get(key)
    if value is None:
        return None
    if not _ID.match(value):
        raise InvalidArgument.field(
            f"metadata.{key}", "must be 1-128 printable ASCII characters without spaces"
        )
    return value


ORIGIN_HEADERS = ("x-modelog-origin", "x-modelog-origin-id", "x-modelog-origin-time", "x-modelog-origin-by")
"""Imported history: source label, the id there, when (ms since the epoch) and who; percent-encoded
UTF-8. Only an admin may send them (an import may claim any past time and person, so it is as strong
as writing the log), and the event's actor stays the importer's own identity."""


def _origin(md: dict[str, str]) -> Origin | None:
    if not any(h in md for h in ORIGIN_HEADERS):
        return None
    try:
        source, source_id, at, by = (unquote(md.get(h, ""), errors="strict") for h in ORIGIN_HEADERS)
    except UnicodeDecodeError:
        raise InvalidArgument.field(
            "metadata.x-modelog-origin", "headers must be percent-encoded UTF-8"
        ) from None
    if not source or not at:
        raise InvalidArgument.field(
            "metadata.x-modelog-origin",
            "imported history needs both x-modelog-origin and x-modelog-origin-time",
        )
    if not at.isascii() or not at.isdigit() or len(at) > 15:
        raise InvalidArgument.field(
            "metadata.x-modelog-origin-time", f"must be milliseconds since the epoch, not {at[:40]!r}"
        )
    try:
        return Origin(source=source, id=source_id, at_ms=int(at), by=by)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        raise InvalidArgument.field(f"metadata.x-modelog-origin.{name}", first["msg"]) from None


def refuse_nul(message: Any, path: str = "") -> None:
    """PostgreSQL text (and jsonb) cannot hold NUL, so a string carrying one would fail in a query as
    an internal error: it is refused here by its field name, before authorization or a handler sees
    it, for every method at once."""
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(key, str) and "\x00" in key:
                    raise InvalidArgument.field(f"{name}[{key!r}]", "keys must not contain NUL characters")
                if isinstance(item, str) and "\x00" in item:
                    raise InvalidArgument.field(f"{name}[{key!r}]", "text must not contain NUL characters")
                if not isinstance(item, str | bytes | int | float | bool):
                    refuse_nul(item, f"{name}[{key!r}].")
        elif field.type == field.TYPE_STRING:
            for i, text in enumerate(value if field.is_repeated else [value]):
                if "\x00" in text:
                    where = f"{name}[{i}]" if field.is_repeated else name
                    raise InvalidArgument.field(where, "text must not contain NUL characters")
        elif field.message_type is not None:
            for i, item in enumerate(value if field.is_repeated else [value]):
                refuse_nul(item, f"{name}[{i}]." if field.is_repeated else f"{name}.")


def client_host(md: dict[str, str], peer: str) -> str:
    """Whom failed authentications are counted against. A call from this host (the HTTP gateway,
    which translates for many clients) may name the client it carries in `x-forwarded-for`; from
    anywhere else that header is ignored, so a remote caller cannot pick its own throttling bucket."""
    host = peer_host(peer)
    forwarded = md.get("x-forwarded-for")
    if forwarded is None:
        return host
    try:
        if not ipaddress.ip_address(host).is_loopback:
            return host
        return str(ipaddress.ip_address(forwarded.split(",")[0].strip()))
    except ValueError:
        return host


def _database_unreachable(exc: BaseException) -> bool:
    """A lost or refused PostgreSQL connection (the server restarting, failing over, recovering): a
    client should retry, so it is UNAVAILABLE, never INTERNAL. Not a query cancelled by a timeout."""
    import asyncpg

    transient = (
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
        asyncpg.CrashShutdownError,
        asyncpg.InternalClientError,  # a connection whose server died mid-operation (it is dropped)
        ConnectionError,
    )
    if isinstance(exc, transient):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


class PlatformInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, authority: TokenAuthority, authorizer: Authorizer) -> None:
        self.authority = authority
        self.authorizer = authorizer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler
        md = _metadata(details)
        rule = self.authorizer.rule(method)
        if rule is None:  # start-up refuses such servicers; never let one through regardless
            return _refuse(handler, f"{method} is not in the permission table")
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, md, rule),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method, md, rule),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method, md, rule, client_streams=True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(handler.stream_stream, method, md, rule, client_streams=True),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _enter(self, method: str, md: dict[str, str], peer: str = "") -> context.RequestContext:
        request_id = _checked_id(md, "x-request-id") or uuid.uuid4().hex
        idem = _checked_id(md, "idempotency-key")
        correlation = _checked_id(md, "x-correlation-id")
        traceparent = md.get("traceparent")
        if traceparent is not None and not _TRACEPARENT.match(traceparent):
            raise InvalidArgument.field(
                "metadata.traceparent", "not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"
            )
        auth = md.get("authorization", "")
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated(
                "missing bearer token: send 'authorization: Bearer <token>' (MODELOG_TOKEN, or the "
                "admin token in MODELOG_HOME/admin-token on the embedded stack)"
            )
        principal = await self.authority.authenticate(secret.strip(), client_host(md, peer))
        span_ctx = trace.get_current_span().get_span_context()
        own_traceparent = (
            f"00-{span_ctx.trace_id:032x}-{span_ctx.span_id:016x}-{int(span_ctx.trace_flags):02x}"
            if span_ctx.is_valid
            else traceparent
        )
        origin = _origin(md)
        if origin is not None and "admin" not in principal.roles:
            raise PermissionDenied(
                f"{principal.name!r} may not import history (x-modelog-origin headers): only an admin "
                "may record facts with another time and person"
            )
        return context.RequestContext(
            actor=principal.name,
            roles=principal.roles,
            request_id=request_id,
            correlation_id=correlation,
            traceparent=own_traceparent,
            tracestate=md.get("tracestate"),
            idempotency_key=idem,
            method=method,
            origin=origin,
        )

    async def _fail(
        self, ctx: grpc.aio.ServicerContext, exc: BaseException, method: str, unread: Any = None
    ) -> None:
        if unread is not None:
            await _drain(unread)
        if isinstance(exc, ValidationError):
            exc = from_validation_error(exc)
        if _database_unreachable(exc):
            log.warning("%s: the database is unreachable: %s", method, exc)
            exc = Unavailable("the database is unreachable or restarting; retry in a moment")
        if isinstance(exc, ModelogError):
            status = to_status(exc)
            await ctx.abort(status.code, status.details, status.trailing_metadata)
        log.exception("unhandled error in %s", method, exc_info=exc)
        await ctx.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}; see the server log")

    async def _admit(
        self, method: str, md: dict[str, str], rule: Rule, request: Any, client_streams: bool, peer: str
    ) -> tuple[context.RequestContext, Any]:
        """Who calls and whether the table lets it: before the handler runs, for every call. A
        client stream's messages are each checked as they arrive (each may name another resource)."""
        rc = await self._enter(method, md, peer)
        if not client_streams:
            refuse_nul(request)
        access = await self.authorizer.access(rc.actor, rc.roles)
        if client_streams:
            return dataclasses.replace(rc, access=access), self._checked(request, rule, method, access)
        perms = await self.authorizer.authorize(rule, method, request, access)
        return dataclasses.replace(rc, access=access, perms=perms), request

    async def _checked(
        self, requests: AsyncIterator[Any], rule: Rule, method: str, access: Access
    ) -> AsyncIterator[Any]:
        allowed: set[tuple[Resource, ...]] = set()
        async for message in requests:
            refuse_nul(message)
            key = tuple(rule.resources(message)) if rule.resources is not None else ()
            if key not in allowed:
                await self.authorizer.authorize(rule, method, message, access)
                allowed.add(key)
            yield message

    def _unary(
        self,
        behavior: Callable[..., Awaitable[Any]],
        method: str,
        md: dict[str, str],
        rule: Rule,
        *,
        client_streams: bool = False,
    ) -> Callable[..., Awaitable[Any]]:
        async def run(request: Any, ctx: grpc.aio.ServicerContext) -> Any:
            unread = request if client_streams else None
            with tracer.start_as_current_span(
                method, kind=trace.SpanKind.SERVER, context=propagate.extract(md)
            ) as span:
                try:
                    rc, request = await self._admit(method, md, rule, request, client_streams, ctx.peer())
                    token = context.bind(rc)
                except Exception as exc:  # noqa: BLE001 - a refusal, or the database gone: a status
                    span.set_status(trace.StatusCode.ERROR, str(exc))
                    await self._fail(ctx, exc, method, unread)
                    return None
                try:
                    return await behavior(request, ctx)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped to a status, never a crash
                    span.record_exception(exc)
                    span.set_status(trace.StatusCode.ERROR, str(exc))
                    await self._fail(ctx, exc, method, unread)
                finally:
                    context.unbind(token)
            return None

        return run

    def _streaming(
        self,
        behavior: Callable[..., AsyncIterator[Any]],
        method: str,
        md: dict[str, str],
        rule: Rule,
        *,
        client_streams: bool = False,
    ) -> Callable[..., AsyncIterator[Any]]:
        async def run(request: Any, ctx: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            # A client that leaves mid-stream gets this generator closed later, by the event loop's
            # finalizer in a context of its own: nothing may stay attached across a `yield`. So the
            # span and the request are made current only around each step of the handler.
            span = tracer.start_span(method, kind=trace.SpanKind.SERVER, context=propagate.extract(md))
            items: AsyncIterator[Any] | None = None
            unread = request if client_streams else None
            try:
                with _current(span, None):
                    try:
                        request_ctx, request = await self._admit(
                            method, md, rule, request, client_streams, ctx.peer()
                        )
                    except Exception as exc:  # noqa: BLE001 - a refusal, or the database gone: a status
                        span.set_status(trace.StatusCode.ERROR, str(exc))
                        await self._fail(ctx, exc, method, unread)
                        return
                    items = aiter(behavior(request, ctx))
                while True:
                    with _current(span, request_ctx):
                        try:
                            item = await anext(items)
                        except StopAsyncIteration:
                            return
                        except grpc.aio.AbortError:
                            raise
                        except Exception as exc:  # noqa: BLE001 - mapped to a status, never a crash
                            span.record_exception(exc)
                            span.set_status(trace.StatusCode.ERROR, str(exc))
                            await self._fail(ctx, exc, method, unread)
                    yield item
            except (GeneratorExit, asyncio.CancelledError):
                span.set_attribute("rpc.grpc.client_left", True)
                raise
            finally:
                if items is not None and hasattr(items, "aclose"):
                    with contextlib.suppress(Exception), _current(span, None):
                        await items.aclose()
                span.end()

        return run


DRAIN_S = 2.0
DRAIN_IDLE_S = 0.1


async def _drain(requests: Any) -> None:
    """Read what a client is still sending before its stream is ended with an error. grpc's asyncio
    client reports INTERNAL "Internal error from Core" instead of the server's status when one of its
    writes races the call's end (grpc/grpc#36066, open in 1.85): a client that has half-closed cannot
    lose that race. Bounded: a client that pauses (waiting for a reply) or never stops is answered
    after DRAIN_IDLE_S of quiet, or DRAIN_S in all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_S
    messages = aiter(requests)
    with contextlib.suppress(Exception):  # the end of the stream, a quiet client, a broken one
        while (left := deadline - loop.time()) > 0:
            await asyncio.wait_for(anext(messages), min(DRAIN_IDLE_S, left))


def _refuse(handler: grpc.RpcMethodHandler, why: str) -> grpc.RpcMethodHandler:
    async def deny(request: Any, ctx: grpc.aio.ServicerContext) -> Any:
        await ctx.abort(grpc.StatusCode.PERMISSION_DENIED, why)

    async def deny_stream(request: Any, ctx: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await ctx.abort(grpc.StatusCode.PERMISSION_DENIED, why)
        yield None

    ser = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(deny, **ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny_stream, **ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(deny, **ser)
    return grpc.stream_stream_rpc_method_handler(deny_stream, **ser)


@contextlib.contextmanager
def _current(span: trace.Span, request: context.RequestContext | None) -> Iterator[None]:
    """The span (and the request, when known) current for one step of a streaming handler."""
    otel_token = otel_context.attach(trace.set_span_in_context(span))
    bound = context.bind(request) if request is not None else None
    try:
        yield
    finally:
        if bound is not None:
            context.unbind(bound)
        otel_context.detach(otel_token)
