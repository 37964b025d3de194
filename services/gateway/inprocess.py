"""The services' own gRPC handlers, called in this process when the gateway runs beside them.

Under `modelog up` the gateway and the services share one process, and a loopback gRPC call costs
more than most of what the services do for an MLflow request: protobuf encoding both ways, HTTP/2
framing, the C core's completion queue, twice per call (and a 1 GiB artifact copied through all of it).
Here a call runs exactly what the gRPC server would run for it, in the same order: the method handler
the servicer registered, wrapped by the server's interceptors (authentication, the permission table,
error mapping), with the caller's metadata and the loopback peer the server would have seen. The one
thing skipped is the wire: request and response messages are handed over as objects.

`capture(server, interceptors)` records the handlers as they are registered on the gRPC server;
`LocalChannel` makes stubs whose methods dispatch to them (falling back to the real channel for a
method no local servicer serves). `modelog serve http` (the gateway alone) has no handlers and keeps
the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc
from grpc.aio import AbortError, AioRpcError, Metadata

PEER = "ipv4:127.0.0.1:0"
"""Who the services see calling: the gateway's host, as over loopback (the interceptor then honours
the x-forwarded-for the gateway sends, so throttling stays per HTTP client)."""


class _Details(grpc.HandlerCallDetails):  # type: ignore[misc]
    def __init__(self, method: str, metadata: Sequence[tuple[str, str]]) -> None:
        self.method = method
        self.invocation_metadata = tuple(metadata)


class _Aborted(AbortError):  # type: ignore[misc]
    def __init__(self, error: AioRpcError) -> None:
        super().__init__(error.details())
        self.error = error


def _error(code: grpc.StatusCode, details: str, trailing: Iterable[tuple[str, Any]] = ()) -> AioRpcError:
    return AioRpcError(code, Metadata(), Metadata(*trailing), details or "")


class _Context:
    """What our servicers and the interceptor ask of a grpc.aio.ServicerContext."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._metadata = tuple(metadata)
        self.sink: asyncio.Queue[Any] | None = None
        self._code: grpc.StatusCode | None = None
        self._details = ""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return PEER

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Iterable[tuple[str, Any]] = ()
    ) -> None:
        raise _Aborted(_error(code, details, trailing_metadata))

    async def write(self, message: Any) -> None:
        if self.sink is None:
            raise RuntimeError("write() outside a server-streaming call")
        await self.sink.put(message)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    async def send_initial_metadata(self, metadata: Any) -> None:
        pass

    def time_remaining(self) -> float | None:
        return None

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return False

    def auth_context(self) -> dict[str, Any]:
        return {}

    def failure(self) -> AioRpcError | None:
        if self._code is None or self._code == grpc.StatusCode.OK:
            return None
        return _error(self._code, self._details)


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class LocalHandlers:
    """The handlers registered on this process's gRPC server, and its interceptors."""

    def __init__(self) -> None:
        self._generic: list[grpc.GenericRpcHandler] = []
        self._interceptors: Sequence[grpc.aio.ServerInterceptor] = ()

    def capture(self, server: grpc.aio.Server, interceptors: Sequence[grpc.aio.ServerInterceptor]) -> None:
        """Record every servicer added to `server` from now on (call it before adding them)."""
        self._interceptors = tuple(interceptors)
        add = server.add_generic_rpc_handlers

        def add_generic_rpc_handlers(handlers: Sequence[grpc.GenericRpcHandler]) -> None:
            self._generic.extend(handlers)
            add(handlers)

        server.add_generic_rpc_handlers = add_generic_rpc_handlers

    def serves(self, method: str) -> bool:
        details = _Details(method, ())
        return any(h.service(details) is not None for h in self._generic)

    async def handler(self, method: str, metadata: Sequence[tuple[str, str]]) -> grpc.RpcMethodHandler:
        """The handler as the server would run it for this call: interceptors applied in order."""
        details = _Details(method, metadata)

        async def found(d: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            for h in self._generic:
                got = h.service(d)
                if got is not None:
                    return got
            return None

        continuation: Continuation = found
        for interceptor in reversed(self._interceptors):

            def wrap(nxt: Continuation, i: grpc.aio.ServerInterceptor = interceptor) -> Continuation:
                async def step(d: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
                    got: grpc.RpcMethodHandler | None = await i.intercept_service(nxt, d)
                    return got

                return step

            continuation = wrap(continuation)
        got = await continuation(details)
        if got is None:
            raise _error(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not served here")
        return got


def _metadata(metadata: Any) -> list[tuple[str, str]]:
    return [(str(k), v) for k, v in (metadata or ())]


class _Unary:
    def __init__(self, local: LocalHandlers, method: str, fallback: Any) -> None:
        self.local, self.method, self.fallback = local, method, fallback

    async def __call__(
        self,
        request: Any,
        *,
        metadata: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 - grpc.aio's signature; see below
        **_: Any,
    ) -> Any:
        md = _metadata(metadata)
        ctx = _Context(md)
        # No deadline of its own: the call lives as long as the HTTP request that makes it (as the
        # server's handler would run on after a client's deadline passed).
        try:
            handler = await self.local.handler(self.method, md)
            if handler.unary_unary is not None:
                reply = await handler.unary_unary(request, ctx)
            else:
                reply = await handler.stream_unary(_one(request), ctx)
        except _Aborted as exc:
            raise exc.error from None
        failure = ctx.failure()
        if failure is not None:
            raise failure
        return reply


async def _one(request: Any) -> AsyncIterator[Any]:
    yield request


class _StreamCall:
    """A streaming call (unary-stream or stream-stream) as grpc.aio's call objects behave for our
    callers: `write`/`done_writing` for requests, async iteration for replies, `cancel`."""

    def __init__(
        self, local: LocalHandlers, method: str, metadata: Any, requests: Any, client_streams: bool
    ) -> None:
        self._md = _metadata(metadata)
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)
        self._local = local
        self._method = method
        self._client_streams = client_streams
        self._given = requests
        self._replies: AsyncIterator[Any] | None = None
        self._done = object()
        self._closed = False

    async def write(self, request: Any) -> None:
        if self._closed:  # as grpc.aio says of a write after the call ended
            raise asyncio.InvalidStateError("the call has ended")
        await self._queue.put(request)

    async def done_writing(self) -> None:
        await self._queue.put(self._done)

    async def _requests(self) -> AsyncIterator[Any]:
        if self._given is not None:
            if hasattr(self._given, "__aiter__"):
                async for r in self._given:
                    yield r
            else:
                for r in self._given:
                    yield r
            return
        while (item := await self._queue.get()) is not self._done:
            yield item

    async def _run(self) -> AsyncIterator[Any]:
        ctx = _Context(self._md)
        try:
            handler = await self._local.handler(self._method, self._md)
            if self._client_streams:
                replies = handler.stream_stream(self._requests(), ctx)
            else:
                replies = handler.unary_stream(self._given, ctx)
            if hasattr(replies, "__aiter__"):
                async for reply in replies:
                    yield reply
            else:  # a handler that answers with `await context.write(...)`
                async for reply in _written(replies, ctx):
                    yield reply
        except _Aborted as exc:
            raise exc.error from None
        finally:
            self._closed = True
            while not self._queue.empty():  # a writer waiting for room gets it, then sees the end
                self._queue.get_nowait()
        failure = ctx.failure()
        if failure is not None:
            raise failure

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._replies is None:
            self._replies = self._run()
        return self._replies

    def cancel(self) -> bool:
        if self._replies is not None:
            replies, self._replies = self._replies, None
            with contextlib.suppress(RuntimeError):  # no loop: nothing left to close
                task = asyncio.ensure_future(replies.aclose())  # type: ignore[attr-defined]
                _closing.add(task)
                task.add_done_callback(_closing.discard)
        return True


_closing: set[asyncio.Future[None]] = set()
"""Streams being closed after a cancel, held until they are (a task nobody holds may vanish)."""


async def _written(done: Awaitable[Any], ctx: _Context) -> AsyncIterator[Any]:
    replies: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)
    ctx.sink = replies
    task = asyncio.ensure_future(done)
    try:
        while True:
            got = asyncio.ensure_future(replies.get())
            await asyncio.wait([got, task], return_when=asyncio.FIRST_COMPLETED)
            if got.done():
                yield got.result()
                continue
            got.cancel()
            while not replies.empty():
                yield replies.get_nowait()
            task.result()  # its refusal, if it ended with one
            return
    finally:
        task.cancel()


class _Streaming:
    def __init__(self, local: LocalHandlers, method: str, fallback: Any, client_streams: bool) -> None:
        self.local, self.method, self.fallback, self.client_streams = local, method, fallback, client_streams

    def __call__(
        self, request: Any = None, *, metadata: Any = None, timeout: float | None = None, **_: Any
    ) -> Any:
        return _StreamCall(self.local, self.method, metadata, request, self.client_streams)


class LocalChannel:
    """A channel for generated stubs whose methods run the local handlers; a method no local servicer
    serves goes over `channel`."""

    def __init__(self, local: LocalHandlers, channel: grpc.aio.Channel) -> None:
        self.local = local
        self.channel = channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        remote = self.channel.unary_unary(method, *args, **kwargs)
        return _Unary(self.local, method, remote) if self.local.serves(method) else remote

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.channel.stream_unary(method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        remote = self.channel.unary_stream(method, *args, **kwargs)
        return _Streaming(self.local, method, remote, False) if self.local.serves(method) else remote

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        remote = self.channel.stream_stream(method, *args, **kwargs)
        return _Streaming(self.local, method, remote, True) if self.local.serves(method) else remote
