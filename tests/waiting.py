"""The one way a test waits for something that becomes true on its own (a view fed over Kafka, a
background job, a process starting): poll a condition until a deadline, never sleep a fixed time.

`wait_until` for plain code and threads, `wait_until_async` on an event loop (its condition may be a
coroutine function). Both return the condition's first truthy value; past `within` seconds they fail
with an AssertionError that names what was awaited and the last thing the condition said.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

EVERY = 0.05
"""Seconds between two looks: short next to any deadline, long next to the look itself."""


def _timed_out(what: str, within: float, last: object, error: BaseException | None) -> AssertionError:
    said = f"; last error: {error!r}" if error is not None else f"; last value: {last!r}"
    return AssertionError(f"timed out after {within} s waiting for {what}{said}")


def wait_until(
    condition: Callable[[], T],
    within: float,
    what: str,
    *,
    ignoring: tuple[type[BaseException], ...] = (),
    every: float = EVERY,
) -> T:
    """`condition()` until it returns something truthy (returned), for at most `within` seconds;
    errors of the `ignoring` types count as "not yet"."""
    deadline = time.monotonic() + within
    while True:
        error: BaseException | None = None
        value: T | None = None
        try:
            value = condition()
        except ignoring as exc:
            error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise _timed_out(what, within, value, error) from error
        time.sleep(every)


async def wait_until_async(
    condition: Callable[[], Awaitable[T] | T],
    within: float,
    what: str,
    *,
    ignoring: tuple[type[BaseException], ...] = (),
    every: float = EVERY,
) -> T:
    """`wait_until` on an event loop, which keeps running between looks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        error: BaseException | None = None
        value: T | None = None
        try:
            got = condition()
            value = await got if inspect.isawaitable(got) else got
        except ignoring as exc:
            error = exc
        else:
            if value:
                return value
        if loop.time() >= deadline:
            raise _timed_out(what, within, value, error) from error
        await asyncio.sleep(every)
