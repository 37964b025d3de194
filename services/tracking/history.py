"""GetMetricHistory and GetMetricHistories: metrics' points from their columnar chunks, downsampled
for plotting on request.

A history asked for whole (max_points 0, or at least its count) is every point, exact. A longer one
is downsampled (downsample.py). When its chunks are in step order and hold more blocks than the
reply has buckets, it is answered from the chunks' block picks (chunks.py) without reading the
points: about 4 points in 64. Otherwise (points logged out of step order, chunks from before
summaries, short histories) every point is read and cut into buckets. Many histories are read with
a few queries in all, never one per history.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice, pairwise

import asyncpg

from eventlog import InvalidArgument
from modelog._gen.tracking.v1 import tracking_pb2 as pb

from .checks import check_id
from .chunks import BLOCK
from .downsample import MIN_MAX_POINTS, block_picks, bucket_picks
from .projections import VIEWS
from .runs import run_not_found

MAX_POINTS_PER_REPLY = 2_000_000
MAX_RUNS = MAX_KEYS = 100
MAX_HISTORIES = 1_000
"""Runs x keys of one GetMetricHistories: a comparison of 100 runs by 10 metrics."""

Pair = tuple[str, str]


@dataclass
class History:
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)
    total: int = 0
    downsampled: bool = False


def check_max_points(max_points: int) -> None:
    if max_points < 0 or 0 < max_points < MIN_MAX_POINTS:
        raise InvalidArgument.field(
            "max_points", f"must be 0 (every point) or at least {MIN_MAX_POINTS} (first, last, min, max)"
        )


def check_batch(run_ids: Sequence[str], keys: Sequence[str]) -> None:
    """GetMetricHistories' limits, each refusal naming the field and the numbers."""
    for name, items, cap in (("run_ids", run_ids, MAX_RUNS), ("keys", keys, MAX_KEYS)):
        if not 1 <= len(items) <= cap:
            raise InvalidArgument.field(name, f"give 1 to {cap} ({len(items)} given)")
        if len(set(items)) != len(items):
            raise InvalidArgument.field(name, "each may appear once")
    for i, key in enumerate(keys):
        if not key:
            raise InvalidArgument.field(f"keys[{i}]", "is required")
    if len(run_ids) * len(keys) > MAX_HISTORIES:
        raise InvalidArgument.field(
            "keys",
            f"{len(run_ids)} runs x {len(keys)} keys is {len(run_ids) * len(keys)} histories, "
            f"more than one call answers ({MAX_HISTORIES})",
        )


async def histories_reply(
    conn: asyncpg.Connection, request: pb.GetMetricHistoriesRequest
) -> pb.GetMetricHistoriesResponse:
    """GetMetricHistories: validated whole before anything is read."""
    run_ids = list(request.run_ids)
    keys = list(request.keys)
    check_batch(run_ids, keys)
    for i, run_id in enumerate(run_ids):
        check_id(f"run_ids[{i}]", run_id)
    got = await metric_histories(conn, run_ids, keys, request.max_points)
    pairs = [(r, k) for r in run_ids for k in keys]
    return pb.GetMetricHistoriesResponse(
        histories=[
            pb.MetricHistory(
                run_id=r,
                key=k,
                steps=h.steps,
                values=h.values,
                timestamps_ms=h.timestamps_ms,
                total_points=h.total,
                downsampled=h.downsampled,
            )
            for (r, k), h in zip(pairs, got, strict=True)
        ]
    )


async def metric_history(conn: asyncpg.Connection, run_id: str, key: str, max_points: int) -> History:
    (h,) = await metric_histories(conn, [run_id], [key], max_points)
    return h


async def metric_histories(
    conn: asyncpg.Connection, run_ids: Sequence[str], keys: Sequence[str], max_points: int
) -> list[History]:
    """One History per (run, key), run by run, key by key; NOT_FOUND naming the first unknown run.
    Its queries read one snapshot: points logged meanwhile never mix into the chunks checked."""
    check_max_points(max_points)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _histories(conn, run_ids, keys, max_points)


async def _histories(
    conn: asyncpg.Connection, run_ids: Sequence[str], keys: Sequence[str], max_points: int
) -> list[History]:
    pairs = [(r, k) for r in run_ids for k in keys]
    counts = await _counts(conn, run_ids, keys)
    _check_reply_size(counts, pairs, max_points)
    out = {p: History(total=counts.get(p, 0)) for p in pairs}
    long = [p for p in pairs if 0 < max_points < out[p].total]
    fast = await _answerable_from_picks(conn, long, max_points)
    whole = [p for p in pairs if out[p].total and p not in fast]
    for p, h in (await _read(conn, [p for p in long if p in fast], _PICKS)).items():
        _from_picks(out[p], h, max_points)
    for p, h in (await _read(conn, whole, _POINTS)).items():
        _from_points(out[p], h, max_points)
    return [out[p] for p in pairs]


async def _counts(conn: asyncpg.Connection, run_ids: Sequence[str], keys: Sequence[str]) -> dict[Pair, int]:
    rows = await conn.fetch(
        f"SELECT r.run_id, m.key, m.count FROM {VIEWS.runs} r "
        f"LEFT JOIN {VIEWS.run_latest_metrics} m ON m.run_id = r.run_id AND m.key = ANY($2::text[]) "
        "WHERE r.run_id = ANY($1::text[])",
        list(run_ids),
        list(keys),
    )
    known = {r[0] for r in rows}
    for run_id in run_ids:
        if run_id not in known:
            raise run_not_found(run_id)
    return {(r[0], r[1]): r[2] for r in rows if r[1] is not None}


def _check_reply_size(counts: dict[Pair, int], pairs: list[Pair], max_points: int) -> None:
    sizes = {p: counts.get(p, 0) for p in pairs}
    total = sum(min(n, max_points) if max_points else n for n in sizes.values())
    if total <= MAX_POINTS_PER_REPLY:
        return
    if len(pairs) == 1:
        ((_, key),) = pairs
        what = f"{key!r} has {total} points"
    else:
        what = f"these {len(pairs)} histories hold {total} points"
    raise InvalidArgument.field(
        "max_points",
        f"{what}, more than one reply carries ({MAX_POINTS_PER_REPLY}); ask for a downsampled series"
        + ("" if len(pairs) == 1 else " or fewer histories"),
    )


async def _answerable_from_picks(conn: asyncpg.Connection, pairs: list[Pair], max_points: int) -> set[Pair]:
    """The pairs whose chunks are summarised, each in step order and following the one before it,
    with at least a block per bucket (fewer would draw coarser than max_points allows)."""
    if not pairs:
        return set()
    chunks: dict[Pair, list[asyncpg.Record]] = defaultdict(list)
    for r in await conn.fetch(
        f"SELECT run_id, key, n, sorted, first_step, last_step FROM {VIEWS.metric_chunks} "
        f"WHERE (run_id, key) IN (SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY run_id, key, seq",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    ):
        chunks[(r[0], r[1])].append(r)
    fast = set()
    for p, rows in chunks.items():
        if any(r[2] is None or not r[3] for r in rows):
            continue
        if any(a[5] > b[4] for a, b in pairwise(rows)):
            continue
        if sum(-(-r[2] // BLOCK) for r in rows) >= max_points // MIN_MAX_POINTS:
            fast.add(p)
    return fast


_POINTS = 'steps, "values", timestamps_ms, n'
_PICKS = "pick_steps, pick_values, pick_timestamps_ms, n, pick_ords"


@dataclass
class _Chunks:
    """A pair's chunks concatenated in log order: points, or picks with their blocks' starts."""

    points: History = field(default_factory=History)
    starts: list[int] = field(default_factory=list)
    n: int = 0


async def _read(conn: asyncpg.Connection, pairs: Sequence[Pair], columns: str) -> dict[Pair, _Chunks]:
    if not pairs:
        return {}
    got: dict[Pair, _Chunks] = {}
    for r in await conn.fetch(
        f"SELECT run_id, key, {columns} FROM {VIEWS.metric_chunks} "
        f"WHERE (run_id, key) IN (SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY run_id, key, seq",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    ):
        c = got.get((r[0], r[1])) or got.setdefault((r[0], r[1]), _Chunks())
        c.points.steps.extend(r[2])
        c.points.values.extend(r[3])
        c.points.timestamps_ms.extend(r[4])
        if columns is _PICKS:
            c.starts.extend([c.n + (o - 1) // BLOCK * BLOCK for o in r[6]])
        c.n += len(r[2]) if r[5] is None else r[5]
    return got


def _from_points(out: History, c: _Chunks, max_points: int) -> None:
    h = c.points
    _sort_by_step(h)
    out.steps, out.values, out.timestamps_ms = h.steps, h.values, h.timestamps_ms
    if max_points and len(h.values) > max_points:
        _take(out, bucket_picks(h.values, max_points))


def _from_picks(out: History, c: _Chunks, max_points: int) -> None:
    h = c.points
    out.steps, out.values, out.timestamps_ms = h.steps, h.values, h.timestamps_ms
    _take(out, block_picks(c.starts, h.values, c.n, max_points))


def _sort_by_step(h: History) -> None:
    """Order by step, points of one step in logging order (a stable sort; skipped when already sorted)."""
    s = h.steps
    if all(map(operator.le, s, islice(s, 1, None))):
        return
    order = sorted(range(len(s)), key=s.__getitem__)
    h.steps = [s[i] for i in order]
    h.values = [h.values[i] for i in order]
    h.timestamps_ms = [h.timestamps_ms[i] for i in order]


def _take(h: History, picks: list[int]) -> None:
    h.steps = [h.steps[i] for i in picks]
    h.values = [h.values[i] for i in picks]
    h.timestamps_ms = [h.timestamps_ms[i] for i in picks]
    h.downsampled = True
