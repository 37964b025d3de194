"""GetMetricHistory: a metric's points from its columnar chunks, downsampled for plotting on request.

Downsampling cuts the step-ordered series into buckets of consecutive points and keeps each bucket's
first, last, smallest and largest point (and its first NaN): a line drawn through them shows every
spike, and the global extremes always survive. Work per point stays in C (list slices, min, max,
index), which keeps a 100,000-point series well inside a plotting budget without numpy.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from itertools import islice

import asyncpg

from eventlog import InvalidArgument, NotFound

from .projections import VIEWS

MAX_POINTS_PER_REPLY = 2_000_000
MIN_MAX_POINTS = 4


@dataclass
class History:
    steps: list[int]
    values: list[float]
    timestamps_ms: list[int]
    total: int
    downsampled: bool = False


async def metric_history(conn: asyncpg.Connection, run_id: str, key: str, max_points: int) -> History:
    if max_points < 0 or 0 < max_points < MIN_MAX_POINTS:
        raise InvalidArgument.field(
            "max_points", f"must be 0 (every point) or at least {MIN_MAX_POINTS} (first, last, min, max)"
        )
    count = await conn.fetchval(
        f"SELECT coalesce((SELECT count FROM {VIEWS.run_latest_metrics} WHERE run_id = $1 AND key = $2), "
        f"(SELECT 0 FROM {VIEWS.runs} WHERE run_id = $1))",
        run_id,
        key,
    )
    if count is None:
        raise NotFound(f"run {run_id!r} does not exist")
    if max_points == 0 and count > MAX_POINTS_PER_REPLY:
        raise InvalidArgument.field(
            "max_points",
            f"{key!r} has {count} points, more than one reply carries ({MAX_POINTS_PER_REPLY}); "
            "ask for a downsampled series",
        )
    steps: list[int] = []
    values: list[float] = []
    stamps: list[int] = []
    for r in await conn.fetch(
        f'SELECT steps, "values", timestamps_ms FROM {VIEWS.metric_chunks} '
        "WHERE run_id = $1 AND key = $2 ORDER BY seq",
        run_id,
        key,
    ):
        steps.extend(r[0])
        values.extend(r[1])
        stamps.extend(r[2])
    history = History(steps, values, stamps, len(steps))
    _sort_by_step(history)
    if max_points and history.total > max_points:
        _downsample(history, max_points)
    return history


def _sort_by_step(h: History) -> None:
    """Order by step, points of one step in logging order (a stable sort; skipped when already sorted)."""
    s = h.steps
    if all(map(operator.le, s, islice(s, 1, None))):
        return
    order = sorted(range(len(s)), key=s.__getitem__)
    h.steps = [s[i] for i in order]
    h.values = [h.values[i] for i in order]
    h.timestamps_ms = [h.timestamps_ms[i] for i in order]


def bucket_picks(values: list[float], max_points: int) -> list[int]:
    """Indexes to keep: per bucket its first, last, min and max (and first NaN), at most max_points."""
    n = len(values)
    if n <= max_points:
        return list(range(n))
    with_nan = max_points > MIN_MAX_POINTS and any(map(math.isnan, values))
    buckets = max_points // (MIN_MAX_POINTS + 1 if with_nan else MIN_MAX_POINTS)
    picks: list[int] = []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        seg = values[lo:hi]
        keep = {lo, hi - 1}
        finite = [i for i, v in enumerate(seg) if v == v] if with_nan else None
        if finite is None:
            # min/max of floats run in C; NaN would confuse them, hence the other branch.
            keep.add(lo + seg.index(min(seg)))
            keep.add(lo + seg.index(max(seg)))
        else:
            if len(finite) < len(seg):
                keep.add(lo + next(i for i, v in enumerate(seg) if v != v))
            if finite:
                keep.add(lo + min(finite, key=seg.__getitem__))
                keep.add(lo + max(finite, key=seg.__getitem__))
        picks.extend(sorted(keep))
    return picks


def _downsample(h: History, max_points: int) -> None:
    picks = bucket_picks(h.values, max_points)
    h.steps = [h.steps[i] for i in picks]
    h.values = [h.values[i] for i in picks]
    h.timestamps_ms = [h.timestamps_ms[i] for i in picks]
    h.downsampled = True
