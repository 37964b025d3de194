"""The one command path against a real log: two processes (two paths) on one stream, streams read
without the event types a decider skips, unique names across streams, and the command map."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import pytest

from eventlog import (
    AlreadyExists,
    CommandPath,
    Decider,
    DomainEvent,
    EventRegistry,
    EventStore,
    Metadata,
    NewEvent,
    create_log,
)
from eventlog.commandpath import Route, command_map
from eventlog.nameclaims import Claim, Release, UniqueNames, name_claims
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio

events = EventRegistry()


@events.register
class WidgetNameClaimed(DomainEvent):
    name: str
    widget_id: str


@events.register
class WidgetNameReleased(DomainEvent):
    name: str
    widget_id: str


@events.register
class Counted(DomainEvent):
    by: int


@dataclass(frozen=True)
class Add:
    by: int


def _decide(cmd: Add, total: int) -> Sequence[DomainEvent]:
    return [Counted(by=cmd.by)]


def _evolve(total: int, event: DomainEvent) -> int:
    return total + event.by if isinstance(event, Counted) else total


counter = Decider(0, _decide, _evolve, skips=frozenset({"Noise"}))
widget_names = name_claims(
    what="widget",
    claimed=WidgetNameClaimed,
    released=WidgetNameReleased,
    holder_field="widget_id",
    check=lambda name: None,
)


async def _store(pool: asyncpg.Pool) -> EventStore:
    async with pool.acquire() as conn:
        await create_log(conn, "cp")
    return EventStore(pool, "cp")


async def test_a_stale_memo_never_acts_and_a_refusal_is_checked_against_the_log(pool: asyncpg.Pool) -> None:
    store = await _store(pool)
    one, two = CommandPath(store, events=events), CommandPath(store, events=events)  # two processes
    meta = Metadata(actor="t")
    await one.execute(widget_names, "name-x", Claim("x", "w1"), meta)
    with pytest.raises(AlreadyExists, match="a widget named 'x' already exists"):
        await two.execute(widget_names, "name-x", Claim("x", "w2"), meta)  # `two` now remembers w1
    await one.execute(widget_names, "name-x", Release("x", "w1"), meta)
    # On its memo `two` would refuse again; the log's tail says the name is free.
    done = await two.execute(widget_names, "name-x", Claim("x", "w2"), meta)
    assert [type(e) for e in done.events] == [WidgetNameClaimed]
    # And `one`, whose memo says free, cannot claim it: its append conflicts and it decides again.
    with pytest.raises(AlreadyExists):
        await one.execute(widget_names, "name-x", Claim("x", "w3"), meta)
    assert (await store.head())[0] == 3
    await store.close()


async def test_a_stream_is_loaded_without_the_types_its_decider_skips(pool: asyncpg.Pool) -> None:
    store = await _store(pool)
    meta = Metadata(actor="t")
    await store.append("c", 0, [NewEvent.of(Counted(by=2))], meta)
    # "Noise" is unknown to the registry: decoding it would fail, so the path must not read it.
    await store.append("c", 1, [NewEvent("Noise", 1, '{"junk": true}')] * 3, meta)
    path = CommandPath(store, events=events)
    assert await path.load(counter, "c") == (2, 4)  # the version counts the skipped events
    done = await path.execute(counter, "c", Add(5), meta)
    assert done.state == 7 and done.result is not None and done.result.stream_version == 5
    # Nothing after the memo: no events, and the version is still the stream's, with or without skips.
    assert await store.read_stream_skipping("c", 6, ()) == ([], 5)
    assert await store.read_stream_skipping("c", 6, {"Noise"}) == ([], 5)
    assert await store.read_stream_skipping("none", 1, ()) == ([], 0)
    assert await path.load(counter, "c") == (7, 5)
    await store.close()


async def test_a_name_claimed_for_a_create_is_released_when_the_create_fails_and_kept_when_the_caller_leaves(
    pool: asyncpg.Pool,
) -> None:
    store = await _store(pool)
    path = CommandPath(store, events=events)
    names = UniqueNames(path, widget_names, lambda name: f"name-{name}")
    meta = Metadata(actor="t", idempotency_key="k1")

    async def fails() -> None:
        raise AlreadyExists("the widget exists")

    with pytest.raises(AlreadyExists, match="the widget exists"):
        await names.create("a", "w1", fails, meta)
    assert await names.holder("a") is None

    started, finish = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await finish.wait()
        return "made"

    caller = asyncio.create_task(names.create("b", "w2", slow, meta))
    await asyncio.wait_for(started.wait(), 5)
    caller.cancel()  # the client hangs up between the claim and the create
    finish.set()
    with pytest.raises(asyncio.CancelledError):
        await caller

    async def held() -> bool:
        return await names.holder("b") == "w2"

    await wait_until_async(held, 5, "the shielded claim-and-create to finish after the caller left")
    await finish.wait()
    keys = await pool.fetch("SELECT idempotency_key FROM cp.events WHERE stream_id LIKE 'name-%'")
    assert {r[0] for r in keys} == {None}  # claims carry no key: the caller's belongs to its command
    await store.close()


async def test_the_command_map_routes_each_member_of_a_union_once(pool: asyncpg.Pool) -> None:
    route = Route(counter, lambda target: f"c-{target}")
    routes = command_map((Add | Claim, route))
    assert set(routes) == {Add, Claim}
    with pytest.raises(TypeError, match="Add has two routes"):
        command_map((Add, route), (Add | Release, route))
    store = await _store(pool)
    path = CommandPath(store, events=events, routes=command_map((Add, route)))
    assert (await path.send("t", Add(3), Metadata(actor="t"))).state == 3
    assert await path.state(Add, "t") == (3, 1)
    with pytest.raises(TypeError, match="no route for Release"):
        await path.send("t", Release("x", "w"), Metadata(actor="t"))
    await store.close()
