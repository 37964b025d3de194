"""The event store against a real PostgreSQL: ordering, concurrency, idempotency, tamper evidence."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict

import asyncpg
import pytest

from eventlog import (
    ConcurrencyConflict,
    EventStore,
    IdempotencyKeyReused,
    InvalidArgument,
    Metadata,
    NewEvent,
    RecordedEvent,
    create_log,
)
from modelog_platform import identity
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio


def ev(i: int) -> NewEvent:
    return NewEvent("Thing", 1, f'{{"i":{i}}}')


async def new_log(pool: asyncpg.Pool, name: str = "t") -> str:
    async with pool.acquire() as conn:
        await create_log(conn, name)
    return name


async def append_with_retry(store: EventStore, stream: str, event: NewEvent, meta: Metadata) -> None:
    while True:
        version = await store.stream_version(stream)
        try:
            await store.append(stream, version, [event], meta)
            return
        except ConcurrencyConflict:
            continue


@pytest.mark.parametrize("group_commit_max", [1, 256], ids=["no-group-commit", "group-commit"])
async def test_reader_never_skips_a_committed_position(pool: asyncpg.Pool, group_commit_max: int) -> None:
    log = await new_log(pool)
    # Two store instances stand for two processes writing one log: only the lock keeps them in order.
    stores = [EventStore(pool, log, group_commit_max=group_commit_max) for _ in range(2)]
    writers, per_writer, streams = 16, 500, 50
    total = writers * per_writer
    seen: list[int] = []

    async def reader() -> None:
        async for e in stores[0].tail(1, batch=300, idle_poll_s=30):
            seen.append(e.position)
            if len(seen) == total:
                return

    async def writer(w: int) -> None:
        rng = random.Random(w)
        store = stores[w % 2]
        for i in range(per_writer):
            stream = f"s-{rng.randrange(streams)}"
            await append_with_retry(store, stream, ev(w * per_writer + i), Metadata(actor=f"w{w}"))

    read_task = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    await asyncio.wait_for(read_task, 60)

    assert seen == list(range(1, total + 1))
    rows = await pool.fetch(f"SELECT stream_id, stream_version FROM {log}.events ORDER BY position")
    versions: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        versions[r[0]].append(r[1])
    for stream, vs in versions.items():
        assert vs == list(range(1, len(vs) + 1)), stream
    report = await stores[0].verify()
    assert report.ok and report.events_checked == total
    commands = sum(s.commands_committed for s in stores)
    batches = sum(s.batches_committed for s in stores)
    assert commands >= total
    if group_commit_max > 1:
        assert batches < commands / 2, "group commit never coalesced concurrent commands"
    else:
        assert batches == commands
    for s in stores:
        await s.close()


async def test_conflicting_expected_version_writes_nothing(pool: asyncpg.Pool) -> None:
    store = EventStore(pool, await new_log(pool))
    await store.append("run-1", 0, [ev(1), ev(2)], Metadata(actor="a"))
    with pytest.raises(ConcurrencyConflict) as info:
        await store.append("run-1", 1, [ev(3)], Metadata(actor="a"))
    assert "expected version 1" in str(info.value) and "at version 2" in str(info.value)
    assert info.value.code.name == "ABORTED"
    with pytest.raises(ConcurrencyConflict):
        await store.append("run-1", 0, [ev(3)], Metadata(actor="a"))
    assert (await store.head())[0] == 2
    assert [e.stream_version for e in await store.read_stream("run-1")] == [1, 2]
    await store.close()


async def test_one_conflict_fails_alone_inside_a_group_commit(pool: asyncpg.Pool) -> None:
    store = EventStore(pool, await new_log(pool), group_commit_max=64)
    await store.append("x", 0, [ev(0)], Metadata())
    results = await asyncio.gather(
        *(store.append(f"y-{i}", 0, [ev(i)], Metadata()) for i in range(20)),
        store.append("x", 0, [ev(99)], Metadata()),  # stale
        return_exceptions=True,
    )
    assert sum(isinstance(r, ConcurrencyConflict) for r in results) == 1
    assert (await store.head())[0] == 21
    await store.close()


@pytest.mark.parametrize("group_commit_max", [1, 8], ids=["no-group-commit", "group-commit"])
async def test_append_many_appends_each_stream_as_append_would(
    pool: asyncpg.Pool, group_commit_max: int
) -> None:
    store = EventStore(pool, await new_log(pool), group_commit_max=group_commit_max)
    await store.append("x", 0, [ev(0)], Metadata())
    assert await store.append_many([], Metadata()) == []
    results = await store.append_many([(f"y-{i}", 0, [ev(i)]) for i in range(20)], Metadata(actor="bulk"))
    assert [(r.stream_id, r.first_position, r.stream_version) for r in results] == [
        (f"y-{i}", i + 2, 1) for i in range(20)
    ]
    # Each append stands alone: a stale one fails, the others are written.
    with pytest.raises(ConcurrencyConflict):
        await store.append_many([("z-1", 0, [ev(1)]), ("x", 0, [ev(2)]), ("z-2", None, [ev(3)])], Metadata())
    assert [e.stream_id for e in await store.read_log(22)] == ["z-1", "z-2"]
    assert (await store.verify()).ok
    with pytest.raises(InvalidArgument, match="one key"):
        await store.append_many([("a", None, [ev(1)]), ("b", None, [ev(1)])], Metadata(idempotency_key="k"))
    with pytest.raises(InvalidArgument):
        await store.append_many([("ok", None, [ev(1)]), ("", None, [ev(1)])], Metadata())
    assert (await store.head())[0] == 23
    await store.close()


async def test_retried_idempotent_command_appends_nothing_and_returns_first_result(
    pool: asyncpg.Pool,
) -> None:
    store = EventStore(pool, await new_log(pool))
    key = str(uuid.uuid4())
    first = await store.append("run-7", 0, [ev(1), ev(2)], Metadata(actor="a", idempotency_key=key))
    # The client did not hear the answer and retries with the same key (and the same, now stale, version).
    again = await store.append("run-7", 0, [ev(1), ev(2)], Metadata(actor="a", idempotency_key=key))
    assert (again.first_position, again.last_position, again.stream_version) == (
        first.first_position,
        first.last_position,
        first.stream_version,
    )
    assert again.replayed and not first.replayed
    assert (await store.head())[0] == 2
    # Concurrent duplicates in one group commit also land once.
    key2 = str(uuid.uuid4())
    dupes = await asyncio.gather(
        *(store.append("run-8", None, [ev(5)], Metadata(idempotency_key=key2)) for _ in range(10))
    )
    assert len({(d.first_position, d.last_position) for d in dupes}) == 1
    assert (await store.head())[0] == 3
    with pytest.raises(IdempotencyKeyReused):
        await store.append("other-stream", None, [ev(1)], Metadata(idempotency_key=key))
    await store.close()


async def test_bad_appends_are_refused_before_touching_the_log(pool: asyncpg.Pool) -> None:
    store = EventStore(pool, await new_log(pool))
    for stream in ["", "x" * 201, "tab\there"]:
        with pytest.raises(InvalidArgument):
            await store.append(stream, None, [ev(1)], Metadata())
    with pytest.raises(InvalidArgument):
        await store.append("s", -2, [ev(1)], Metadata())
    assert (await store.head())[0] == 0


async def _tamper(pool: asyncpg.Pool, log: str, sql: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"ALTER TABLE {log}.events DISABLE TRIGGER events_append_only")
        await conn.execute(sql)
        await conn.execute(f"ALTER TABLE {log}.events ENABLE TRIGGER events_append_only")


@pytest.mark.parametrize("what", ["update-payload", "update-metadata", "delete-row", "update-time"])
async def test_verify_names_the_tampered_position(pool: asyncpg.Pool, what: str) -> None:
    log = await new_log(pool)
    store = EventStore(pool, log)
    for i in range(1, 31):
        await store.append(f"s{i % 3}", None, [ev(i)], Metadata(actor="alice"))
    assert (await store.verify()).ok
    where = "WHERE position = 17"
    sql = {
        "update-payload": f"""UPDATE {log}.events SET payload = '{{"i":1000}}' {where}""",
        "update-metadata": f"""UPDATE {log}.events SET metadata = '{{"actor":"mallory"}}' {where}""",
        "delete-row": f"DELETE FROM {log}.events {where}",
        "update-time": f"UPDATE {log}.events SET recorded_at = recorded_at - interval '1 day' {where}",
    }[what]
    await _tamper(pool, log, sql)
    report = await store.verify()
    assert not report.ok
    assert report.first_bad_position == 17
    assert "17" in report.reason
    assert report.events_checked == 16


async def test_log_refuses_update_and_delete(pool: asyncpg.Pool) -> None:
    log = await new_log(pool)
    store = EventStore(pool, log)
    await store.append("s", None, [ev(1)], Metadata())
    for sql in (f"UPDATE {log}.events SET type = 'X'", f"DELETE FROM {log}.events", f"TRUNCATE {log}.events"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await pool.execute(sql)
    assert (await store.verify()).ok


async def test_v1_event_reads_as_the_current_model_through_its_upcaster(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await create_log(conn, identity.LOG)
    store = EventStore(pool, identity.LOG)
    # Tokens issued before roles existed were stored as TokenIssued v1 without `roles`.
    v1 = NewEvent("TokenIssued", 1, '{"name":"ci","token_sha256":"ab"}')
    await store.append("token-ci", 0, [v1], Metadata())
    [recorded] = await store.read_stream("token-ci")
    assert recorded.schema_version == 1
    decoded = recorded.decode(identity.registry)
    assert isinstance(decoded, identity.TokenIssued)
    assert decoded.roles == ("admin",)
    assert identity.token_decider.fold([decoded]).roles == ("admin",)


async def test_tail_wakes_on_notify_not_on_polling(pool: asyncpg.Pool) -> None:
    store = EventStore(pool, await new_log(pool))
    got: asyncio.Queue[int] = asyncio.Queue()

    async def follow() -> None:
        async for e in store.tail(1, idle_poll_s=3600):
            await got.put(e.position)

    empty_reads = 0  # the follower found nothing new: what it does next is wait on LISTEN
    read_log = store.read_log

    async def counted(from_position: int, limit: int = 1000) -> list[RecordedEvent]:
        nonlocal empty_reads
        events = await read_log(from_position, limit)
        empty_reads += not events
        return events

    store.read_log = counted  # type: ignore[method-assign]
    task = asyncio.create_task(follow())
    try:
        for i in range(1, 4):
            await wait_until_async(lambda i=i: empty_reads >= i, 5, "the follower to go idle on LISTEN")
            await store.append("s", None, [ev(i)], Metadata())
            assert await asyncio.wait_for(got.get(), 5) == i
    finally:
        task.cancel()
    await store.close()


async def test_a_retried_command_replays_even_when_deciding_again_would_refuse(pool: asyncpg.Pool) -> None:
    from eventlog import CommandPath
    from modelog_platform.identity import CreateToken

    async with pool.acquire() as conn:
        await create_log(conn, identity.LOG)
    store = EventStore(pool, identity.LOG)
    meta = Metadata(actor="admin", idempotency_key="create-ci-1")
    first = await CommandPath(store, events=identity.registry).execute(
        identity.token_decider, "token-ci", CreateToken("ci", "h", ("member",)), meta
    )
    # A fresh path (another process, or after a restart): nothing remembered, the log decides.
    again = await CommandPath(store, events=identity.registry).execute(
        identity.token_decider, "token-ci", CreateToken("ci", "h2", ("member",)), meta
    )  # would be "already exists"
    assert again.replayed and again.events == first.events
    assert again.result is not None and first.result is not None
    assert (again.result.first_position, again.result.last_position) == (
        first.result.first_position,
        first.result.last_position,
    )
    assert (await store.head())[0] == 1
    await store.close()
