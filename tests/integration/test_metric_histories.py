"""GetMetricHistories and the downsampled read over chunk summaries, on a real PostgreSQL: one call
answers what many GetMetricHistory calls would, a long history is downsampled from its chunks'
block picks without its points (a spike inside a chunk survives), the view rebuilds to the live one
and chunks of an older release are summarised on upgrade, bad batches write nothing, and the
permission table guards every run of a batch."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import grpc
import pytest

from eventlog.projection import SHADOW, Tables
from eventlog.rebuild import rebuild
from eventlog.sources import StoreReader
from modelog._gen.identity.v1 import access_pb2, access_pb2_grpc, identity_pb2, identity_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as pb
from modelog_services.tracking.chunks import BLOCK, SUMMARY
from modelog_services.tracking.downsample import block_picks, bucket_picks
from modelog_services.tracking.projections import RunsView
from tests.integration.test_tracking_api import TrackingStack, open_stack, refused, refused_unwritten

pytestmark = pytest.mark.asyncio

CHUNK = 10_000
Series = tuple[list[int], list[float]]


@pytest.fixture(scope="module")
async def tk(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TrackingStack]:
    async with open_stack(pg_dsn, tmp_path_factory.mktemp("home")) as stack:
        yield stack


@pytest.fixture
async def own(pg_dsn: str, tmp_path: Path) -> AsyncIterator[TrackingStack]:
    """A database of its own, for tests that alter the view behind the service's back."""
    async with open_stack(pg_dsn, tmp_path) as stack:
        yield stack


async def _rows(pool: asyncpg.Pool, table: str) -> list[str]:
    """Compared as text: NaN equals NaN there, and every column takes part."""
    return [r[0] for r in await pool.fetch(f"SELECT t::text FROM {table} t ORDER BY 1")]


async def _stream(batches: list[pb.MetricBatch]) -> AsyncIterator[pb.MetricBatch]:
    for b in batches:
        yield b


async def log_chunks(tk: TrackingStack, run_id: str, key: str, steps: list[int], values: list[float]) -> None:
    """One MetricsLogged (one chunk) per CHUNK points."""
    batches = [
        pb.MetricBatch(
            run_id=run_id,
            keys=[key] * len(steps[i : i + CHUNK]),
            values=values[i : i + CHUNK],
            steps=steps[i : i + CHUNK],
            timestamps_ms=[1_000 + s for s in steps[i : i + CHUNK]],
        )
        for i in range(0, len(steps), CHUNK)
    ]
    await tk.api.LogMetrics(_stream(batches), metadata=tk.md())


def spiky(n: int) -> Series:
    """A smooth curve with spikes well inside chunks (not at a chunk's or a block's edge) and NaN."""
    values = [math.sin(i / 700.0) for i in range(n)]
    values[54_321], values[123_457], values[150_001] = 1e6, -1e6, math.nan
    return list(range(n)), values


def reference(values: list[float], chunk_sizes: Sequence[int], max_points: int) -> list[int]:
    """What a read over block picks must keep, computed here from every point: per block of every
    chunk its first, last, first min, first max and first NaN, then downsample.block_picks."""
    idx: list[int] = []
    starts: list[int] = []
    offset = 0
    for size in chunk_sizes:
        for lo in range(offset, offset + size, BLOCK):
            hi = min(lo + BLOCK, offset + size)
            seg = values[lo:hi]
            finite = [i for i, v in enumerate(seg) if v == v]
            keep = {lo, hi - 1}
            if finite:
                keep |= {lo + min(finite, key=seg.__getitem__), lo + max(finite, key=seg.__getitem__)}
            if len(finite) < len(seg):
                keep.add(lo + next(i for i, v in enumerate(seg) if v != v))
            idx.extend(sorted(keep))
            starts.extend([lo] * len(keep))
        offset += size
    return [idx[i] for i in block_picks(starts, [values[i] for i in idx], offset, max_points)]


def points(h: pb.GetMetricHistoryResponse | pb.MetricHistory) -> list[tuple[int, str, int]]:
    return [(s, repr(v), t) for s, v, t in zip(h.steps, h.values, h.timestamps_ms, strict=True)]


async def one(tk: TrackingStack, run_id: str, key: str, max_points: int) -> pb.GetMetricHistoryResponse:
    return await tk.api.GetMetricHistory(
        pb.GetMetricHistoryRequest(run_id=run_id, key=key, max_points=max_points), metadata=tk.md()
    )


async def many(
    tk: TrackingStack,
    run_ids: Sequence[str],
    keys: Sequence[str],
    max_points: int,
    md: list[tuple[str, str]] | None = None,
) -> pb.GetMetricHistoriesResponse:
    request = pb.GetMetricHistoriesRequest(run_ids=run_ids, keys=keys, max_points=max_points)
    return await tk.api.GetMetricHistories(request, metadata=tk.md() if md is None else md)


async def test_a_long_history_keeps_a_spike_inside_a_chunk_from_block_picks(tk: TrackingStack) -> None:
    run_id = (await tk.run((await tk.experiment()).experiment_id)).info.run_id
    steps, values = spiky(200_000)
    await log_chunks(tk, run_id, "loss", steps, values)
    for max_points in (1_000, 4_000):
        h = await one(tk, run_id, "loss", max_points)
        assert h.downsampled and h.total_points == 200_000 and len(h.values) <= max_points
        expected = reference(values, [CHUNK] * 20, max_points)
        assert list(h.steps) == expected  # exactly the block picks' answer
        assert [repr(v) for v in h.values] == [repr(values[i]) for i in expected]
        assert list(h.timestamps_ms) == [1_000 + i for i in expected]
        got = list(zip(h.steps, h.values, strict=True))
        assert {s: v for s, v in got if abs(v) == 1e6} == {54_321: 1e6, 123_457: -1e6}
        assert any(s == 150_001 and math.isnan(v) for s, v in got)
        assert h.steps[0] == 0 and h.steps[-1] == 199_999
    whole = await one(tk, run_id, "loss", 0)
    assert not whole.downsampled and list(whole.steps) == steps
    assert [repr(v) for v in whole.values] == [repr(v) for v in values]


async def test_the_downsampled_read_does_not_read_the_points(own: TrackingStack) -> None:
    """The points of the chunks are zeroed behind the service's back: a downsampled answer does
    not change (it came from the picks), an exact one shows the zeros (it read the points)."""
    run_id = (await own.run((await own.experiment()).experiment_id)).info.run_id
    steps, values = spiky(200_000)
    await log_chunks(own, run_id, "loss", steps, values)
    before = points(await one(own, run_id, "loss", 1_000))
    await own.platform.pool.execute(
        """UPDATE tracking.metric_chunks SET "values" = array_fill(0::float8, ARRAY[cardinality("values")])
            WHERE run_id = $1""",
        run_id,
    )
    assert points(await one(own, run_id, "loss", 1_000)) == before
    assert set((await one(own, run_id, "loss", 0)).values) == {0.0}


async def test_points_logged_out_of_step_order_are_downsampled_from_every_point(tk: TrackingStack) -> None:
    run_id = (await tk.run((await tk.experiment()).experiment_id)).info.run_id
    steps = list(range(100_000))
    values = [math.cos(i / 300.0) for i in steps]
    values[77_777] = 5e5
    # the second half first: chunks whose steps overlap no order the summaries could follow
    await log_chunks(tk, run_id, "m", steps[50_000:], values[50_000:])
    await log_chunks(tk, run_id, "m", steps[:50_000], values[:50_000])
    h = await one(tk, run_id, "m", 2_000)
    assert h.downsampled and list(h.steps) == bucket_picks(values, 2_000) and 5e5 in h.values


async def test_one_batched_call_answers_what_one_call_per_history_does(tk: TrackingStack) -> None:
    e = (await tk.experiment()).experiment_id
    runs = [(await tk.run(e)).info.run_id for _ in range(3)]
    steps, values = spiky(160_000)
    await log_chunks(tk, runs[0], "loss", steps, values)
    await log_chunks(tk, runs[0], "acc", list(range(300)), [i / 300 for i in range(300)])
    await tk.log(runs[1], [("acc", 0.5, 2), ("acc", 0.25, 1), ("loss", math.nan, 0)])
    await log_chunks(tk, runs[2], "loss", [5, 4, 3] * 10_000, [float(i) for i in range(30_000)])
    keys = ["loss", "acc", "absent"]
    for max_points in (0, 4, 5, 400, 4_000):
        reply = await many(tk, runs, keys, max_points)
        assert [(h.run_id, h.key) for h in reply.histories] == [(r, k) for r in runs for k in keys]
        for h in reply.histories:
            single = await one(tk, h.run_id, h.key, max_points)
            assert (points(h), h.total_points, h.downsampled) == (
                points(single),
                single.total_points,
                single.downsampled,
            ), (h.run_id, h.key, max_points)
    empty = (await many(tk, runs[1:2], ["absent"], 400)).histories[0]
    assert (empty.total_points, list(empty.steps), empty.downsampled) == (0, [], False)


async def test_bad_batches_are_refused_and_write_nothing(tk: TrackingStack) -> None:
    e = (await tk.experiment()).experiment_id
    run_id = (await tk.run(e)).info.run_id
    await tk.log(run_id, [("a", 1.0, 0)])
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    cases: list[tuple[list[str], list[str], int, grpc.StatusCode, tuple[str, ...]]] = [
        ([run_id] * 0, ["a"], 0, invalid, ("run_ids", "1 to 100", "0 given")),
        ([f"r{i}" for i in range(101)], ["a"], 0, invalid, ("run_ids", "101 given")),
        ([run_id], [], 0, invalid, ("keys", "0 given")),
        ([run_id], ["a", ""], 0, invalid, ("keys[1]", "required")),
        ([run_id], ["a", "a"], 0, invalid, ("keys", "once")),
        ([run_id, run_id], ["a"], 0, invalid, ("run_ids", "once")),
        (
            [f"r{i}" for i in range(11)],
            [f"k{i}" for i in range(100)],
            0,
            invalid,
            ("11 runs x 100 keys", "1000"),
        ),
        ([run_id], ["a"], 2, invalid, ("max_points", "at least 4")),
        ([run_id], ["a"], -1, invalid, ("max_points",)),
        ([run_id, "not an id"], ["a"], 0, invalid, ("run_ids[1]", "not an id")),
        ([run_id, "ghost"], ["a"], 0, grpc.StatusCode.NOT_FOUND, ("ghost",)),
    ]
    for run_ids, keys, max_points, code, words in cases:
        await refused_unwritten(tk, lambda: many(tk, run_ids, keys, max_points), code, *words)  # noqa: B023


async def test_rebuilt_view_equals_live_and_older_chunks_are_summarised_on_upgrade(
    own: TrackingStack,
) -> None:
    e = (await own.experiment()).experiment_id
    a, b = (await own.run(e)).info.run_id, (await own.run(e)).info.run_id
    steps, values = spiky(160_000)
    await log_chunks(own, a, "loss", steps, values)
    await own.log(b, [("x", 3.0, 3), ("x", math.nan, 1), ("y", -0.0, 0), ("x", 0.0, 1), ("y", math.inf, 2)])
    await own.log(b, [("x", 2.0, 0)])
    before = [points(h) for h in (await many(own, [a, b], ["loss", "x", "y"], 400)).histories]
    pool = own.platform.pool
    live, shadow = Tables("tracking"), Tables("tracking", SHADOW)

    async def same_as_rebuilt() -> None:
        for table in RunsView.tables:
            rows = await _rows(pool, getattr(live, table))
            assert rows == await _rows(pool, getattr(shadow, table)), f"{table} differs"

    assert (await rebuild(pool, RunsView(), StoreReader(own.platform.stores), swap=False)).events > 0
    await same_as_rebuilt()
    assert len(await _rows(pool, live.metric_chunks)) == 19  # 16 chunks of a; x, y and x again of b
    # the table as an older release left it: no summaries; the service still answers from the points
    await pool.execute(f"ALTER TABLE {live.metric_chunks} " + ", ".join(f"DROP COLUMN {c}" for c in SUMMARY))
    async with pool.acquire() as conn:
        await RunsView().ensure(conn)  # what start-up does: the upgrade adds and fills the summaries
        await RunsView().ensure(conn)  # and only once
    await same_as_rebuilt()
    assert [points(h) for h in (await many(own, [a, b], ["loss", "x", "y"], 400)).histories] == before


async def test_a_reader_may_read_a_batch_and_others_may_not(tk: TrackingStack) -> None:
    identity = identity_pb2_grpc.IdentityStub(tk.channel)
    access = access_pb2_grpc.AccessStub(tk.channel)

    async def token(name: str, role: str) -> str:
        made = await identity.CreateToken(
            identity_pb2.CreateTokenRequest(name=name, roles=[role]), metadata=tk.md()
        )
        return made.secret

    def bearer(secret: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {secret}")]

    mine, other = (await tk.experiment()).experiment_id, (await tk.experiment()).experiment_id
    granted, hidden = (await tk.run(mine)).info.run_id, (await tk.run(other)).info.run_id
    for r in (granted, hidden):
        await tk.log(r, [("loss", 1.0, 0)])
    viewer, nobody, scoped = (
        await token("hist-viewer", "viewer"),
        await token("hist-nobody", "none"),
        await token("hist-scoped", "none"),
    )
    await access.AddGrant(
        access_pb2.AddGrantRequest(
            grant=access_pb2.GrantInfo(
                principal="hist-scoped", scope_kind="experiment", scope=mine, permission="READ"
            )
        ),
        metadata=tk.md(),
    )
    both = [granted, hidden]
    assert len((await many(tk, both, ["loss"], 0, bearer(viewer))).histories) == 2
    assert len((await many(tk, [granted], ["loss"], 0, bearer(scoped))).histories) == 1
    # every run of the batch is checked: one the caller may not read does not exist for it
    await refused(many(tk, both, ["loss"], 0, bearer(scoped)), grpc.StatusCode.NOT_FOUND, hidden)
    await refused(many(tk, [granted], ["loss"], 0, bearer(nobody)), grpc.StatusCode.NOT_FOUND, granted)
    await refused(many(tk, [granted], ["loss"], 0, []), grpc.StatusCode.UNAUTHENTICATED)
