"""Every RPC as JSON over HTTP, transcoded from the proto descriptors: one route, no per-method code.

`POST /api/modelog/v1/{package.Service}/{Method}` takes the request message in proto3 JSON and answers
with the response message (lowerCamelCase, int64 as strings). Server streams answer as Server-Sent
Events; client streams take a JSON array (or NDJSON) of request messages; bidi streams take the same
and answer as SSE. The call goes to the services over gRPC with the caller's token, so the permission
table, validation and events are exactly those of any SDK call. The methods served are the permission
table's, the same set the interceptor admits.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import pkgutil
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from eventlog.errors import InvalidArgument, ModelogError, NotFound, Unauthenticated
from modelog_services import permissions
from modelog_services.gateway import openapi
from modelog_services.gateway.errors import api_error
from modelog_services.gateway.http import BodyTooLarge, caller
from modelog_services.gateway.upstream import Caller, Upstream, from_rpc

PREFIX = "/api/modelog/v1"
NDJSON = "application/x-ndjson"
UNARY_DEADLINE_S = 60.0
FIRST_MESSAGE_WAIT_S = 1.0
"""How long a stream may take to say its first word before the 200 goes out: refusals (auth,
permission, validation) come at once and get their own HTTP status; a stream that follows a log may
stay quiet for ever and is answered 200 after this wait."""
HEARTBEAT_S = 15.0
"""A comment line on a quiet stream, so proxies keep it open and a gone client is noticed."""
_METADATA_VALUE = re.compile(r"^[\x21-\x7e]{1,128}\Z")  # as the interceptor checks ids
_TOKEN = re.compile(r"^[\x21-\x7e]+\Z")
_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""Routes take every method and answer a wrong one themselves, as a 405 in the API's error form."""


@dataclass(frozen=True)
class Rpc:
    """One served method: its descriptor and message classes."""

    descriptor: MethodDescriptor
    request: type[Message]
    response: type[Message]

    @property
    def path(self) -> str:
        return f"/{self.descriptor.containing_service.full_name}/{self.descriptor.name}"

    @property
    def client_streaming(self) -> bool:
        return bool(self.descriptor.client_streaming)

    @property
    def server_streaming(self) -> bool:
        return bool(self.descriptor.server_streaming)


def _load_apis() -> None:
    """Import every generated module, so the default descriptor pool knows every service."""
    import modelog._gen as gen

    for info in pkgutil.walk_packages(gen.__path__, "modelog._gen."):
        if info.name.endswith("_pb2"):
            importlib.import_module(info.name)


@cache
def served() -> dict[str, Rpc]:
    """`package.Service/Method` -> the method, for every key of the permission table."""
    _load_apis()
    pool = descriptor_pool.Default()
    out: dict[str, Rpc] = {}
    for path in permissions.rules():
        descriptor = pool.FindMethodByName(path.strip("/").replace("/", "."))
        out[path.lstrip("/")] = Rpc(
            descriptor,
            message_factory.GetMessageClass(descriptor.input_type),
            message_factory.GetMessageClass(descriptor.output_type),
        )
    return out


# --- JSON in ---------------------------------------------------------------------------------------


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f'{name} is not JSON (proto3 JSON writes it as the string "{name}")')


def _loads(text: str, what: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidArgument(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None


_FAILED = re.compile(r"Failed to parse (\S+) field: ")
_NO_FIELD = re.compile(r'has no field named "([^"]+)"')
_AT = re.compile(r' at "?[A-Za-z0-9_]+((?:\.[A-Za-z0-9_]+|\[[^\]]*\])*)"?\.?')


def _field_path(message: str) -> str:
    """The field a ParseError is about: json_format names it in one of three ways."""
    chain = ".".join(_FAILED.findall(message))
    at = _AT.search(message)
    path = at.group(1).lstrip(".") if at else ""  # " at Type.field[key]", or " at Type" alone
    if len(chain) > len(path):
        path = chain
    missing = _NO_FIELD.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path


def _parse(value: Any, cls: type[Message], where: str = "") -> Message:
    name = cls.DESCRIPTOR.full_name
    if not isinstance(value, dict):
        raise InvalidArgument.field(where or "body", f"must be a JSON object (a {name} message)")
    message = cls()
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=False)
    except RecursionError:
        raise InvalidArgument.field(where or "body", "nested too deeply") from None
    except (json_format.ParseError, TypeError, ValueError, OverflowError) as exc:
        text = str(exc).split("\n", 1)[0]
        path = _field_path(text)
        field = f"{where}.{path}" if where and path else (where or path or "body")
        reason = _AT.sub("", _FAILED.sub("", text)).rstrip(". ") or text
        raise InvalidArgument.field(field, f"{reason} (in a {name} message)") from None
    return message


def _stream_items(raw: str, ndjson: bool) -> list[Any]:
    if ndjson:
        return [
            _loads(line, f"line {n} of the NDJSON body")
            for n, line in enumerate(raw.splitlines(), 1)
            if line.strip()
        ]
    if not raw.strip():
        return []
    items = _loads(raw, "the request body")
    if not isinstance(items, list):
        raise InvalidArgument.field(
            "body", "a client stream takes a JSON array of request messages (or NDJSON lines)"
        )
    return items


async def _requests(request: Request, rpc: Rpc) -> list[Message]:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"the request body is not UTF-8 (invalid byte at offset {exc.start})") from None
    if rpc.client_streaming:
        ndjson = request.headers.get("content-type", "").split(";")[0].strip().lower() == NDJSON
        return [_parse(v, rpc.request, f"[{i}]") for i, v in enumerate(_stream_items(text, ndjson))]
    if not text.strip():
        return [rpc.request()]  # no body: the empty message, as for a GET-like call
    return [_parse(_loads(text, "the request body"), rpc.request)]


# --- JSON out --------------------------------------------------------------------------------------


def _json(message: Message) -> str:
    body = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _sse(event: str | None, data: str) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


def _error_json(err: ModelogError) -> str:
    return bytes(api_error(err).body).decode()


# --- calls -----------------------------------------------------------------------------------------


def _metadata(request: Request, who: Caller) -> list[tuple[str, str]]:
    """The gRPC metadata, every value checked here: a value gRPC cannot carry must be a 400/401, not
    an exception in the channel."""
    if not _TOKEN.match(who.token):
        raise Unauthenticated("malformed token: a token is printable ASCII without spaces")
    for header in ("idempotency-key", "x-request-id"):
        value = request.headers.get(header)
        if value is not None and not _METADATA_VALUE.match(value):
            raise InvalidArgument.field(header, "must be 1-128 printable ASCII characters without spaces")
    return who.metadata(request.headers.get("idempotency-key"))


async def _iterate(items: Iterable[Message]) -> AsyncIterator[Message]:
    for item in items:
        yield item


def _ser(message: Message) -> bytes:
    return message.SerializeToString()


async def _unary(
    upstream: Upstream, rpc: Rpc, messages: list[Message], md: list[tuple[str, str]]
) -> Response:
    try:
        if rpc.client_streaming:
            call = upstream.channel.stream_unary(
                rpc.path, request_serializer=_ser, response_deserializer=rpc.response.FromString
            )
            reply = await call(_iterate(messages), metadata=md, timeout=UNARY_DEADLINE_S)
        else:
            method = upstream.channel.unary_unary(
                rpc.path, request_serializer=_ser, response_deserializer=rpc.response.FromString
            )
            reply = await method(messages[0], metadata=md, timeout=UNARY_DEADLINE_S)
    except grpc.aio.AioRpcError as exc:
        return api_error(from_rpc(exc))
    return Response(_json(reply), 200, media_type="application/json")


def _open_stream(upstream: Upstream, rpc: Rpc, messages: list[Message], md: list[tuple[str, str]]) -> Any:
    if rpc.client_streaming:
        bidi = upstream.channel.stream_stream(
            rpc.path, request_serializer=_ser, response_deserializer=rpc.response.FromString
        )
        return bidi(_iterate(messages), metadata=md)
    stream = upstream.channel.unary_stream(
        rpc.path, request_serializer=_ser, response_deserializer=rpc.response.FromString
    )
    return stream(messages[0], metadata=md)


async def _streamed(
    upstream: Upstream, rpc: Rpc, messages: list[Message], md: list[tuple[str, str]]
) -> Response:
    call = _open_stream(upstream, rpc, messages, md)
    replies = aiter(call)
    first: asyncio.Future[Message] = asyncio.ensure_future(anext(replies))
    first.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved, whoever reads it
    try:
        await asyncio.wait({first}, timeout=FIRST_MESSAGE_WAIT_S)
    except BaseException:
        first.cancel()
        call.cancel()
        raise
    if first.done() and isinstance(first.exception(), grpc.aio.AioRpcError):
        return api_error(from_rpc(first.exception()))

    async def events() -> AsyncIterator[bytes]:
        pending = first
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_S)
                if not done:
                    yield b": keep-alive\n\n"
                    continue
                try:
                    message = pending.result()
                except StopAsyncIteration:
                    yield _sse("end", '{"status":"OK"}')
                    return
                except grpc.aio.AioRpcError as exc:
                    yield _sse("error", _error_json(from_rpc(exc)))
                    return
                yield _sse(None, _json(message))
                pending = asyncio.ensure_future(anext(replies))
        finally:
            # The client left (Starlette cancels us on http.disconnect) or the stream ended.
            pending.cancel()
            call.cancel()
            with contextlib.suppress(BaseException):
                await pending

    def close() -> None:
        first.cancel()
        call.cancel()

    return _EventStream(events(), close)


class _EventStream(StreamingResponse):
    """Server-Sent Events whose upstream call ends with the response, however it ends: a client that
    leaves before the first byte never starts the body, so the body's own `finally` cannot do it."""

    def __init__(self, body: AsyncIterator[bytes], close: Callable[[], None]) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(body, 200, headers=headers, media_type="text/event-stream")
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._close()


def _not_allowed(method: str, allowed: str) -> Response:
    err = ModelogError(f"HTTP method {method} is not allowed here: use {allowed}")
    err.code = grpc.StatusCode.UNIMPLEMENTED
    err.reason = "METHOD_NOT_ALLOWED"
    response = api_error(err)
    response.status_code = 405
    response.headers["Allow"] = allowed
    return response


def _too_large(exc: BodyTooLarge) -> Response:
    err = ModelogError(str(exc))
    err.code = grpc.StatusCode.RESOURCE_EXHAUSTED
    err.reason = "REQUEST_TOO_LARGE"
    response = api_error(err)
    response.status_code = 413
    del response.headers["Retry-After"]
    return response


def _unknown(service: str, method: str) -> ModelogError:
    if not any(path.startswith(f"{service}/") for path in served()):
        return NotFound(f"no service {service!r} is served at {PREFIX}/ (see {PREFIX}/openapi.json)")
    return NotFound(f"service {service!r} has no method {method!r} (see {PREFIX}/openapi.json)")


def routes(upstream: Upstream) -> list[BaseRoute]:
    async def call(request: Request) -> Response:
        service, method = request.path_params["service"], request.path_params["method"]
        rpc = served().get(f"{service}/{method}")
        try:
            if rpc is None:
                raise _unknown(service, method)
            if request.method != "POST":
                return _not_allowed(request.method, "POST")
            md = _metadata(request, caller(request))
            messages = await _requests(request, rpc)
            if rpc.server_streaming:
                response = await _streamed(upstream, rpc, messages, md)
            else:
                response = await _unary(upstream, rpc, messages, md)
        except ModelogError as err:
            response = api_error(err)
        except BodyTooLarge as exc:
            response = _too_large(exc)
        request_id = request.headers.get("x-request-id")
        if request_id and _METADATA_VALUE.match(request_id):
            response.headers["X-Request-Id"] = request_id
        return response

    async def document(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _not_allowed(request.method, "GET")
        return Response(
            openapi.document_bytes(tuple(r.descriptor for r in served().values()), PREFIX),
            200,
            media_type="application/json",
            headers={"Cache-Control": "public, max-age=300"},
        )

    async def elsewhere(request: Request) -> Response:
        return api_error(
            NotFound(
                f"{request.url.path} is not an API path: use POST {PREFIX}/{{package.Service}}/{{Method}} "
                f"(see {PREFIX}/openapi.json)"
            )
        )

    return [
        Route(f"{PREFIX}/openapi.json", document, methods=_ANY_METHOD),
        Route(PREFIX + "/{service}/{method}", call, methods=_ANY_METHOD),
        Route(PREFIX + "/{rest:path}", elsewhere, methods=_ANY_METHOD),
    ]
