"""Which points a downsampled history keeps: per bucket its first, last, smallest and largest point.

A line drawn through them shows every spike, and the global extremes always survive. NaN is skipped
by min and max; when there is room (more than 4 points a bucket) a bucket also keeps its first NaN,
so a series that went NaN shows it. Work per point stays in C (list slices, min, max, index).

Two ways to cut buckets, one rule for what a bucket keeps: `bucket_picks` cuts a whole series into
equal runs of points; `block_picks` gets only the picks of blocks (chunks.py) and cuts buckets at
block starts, so each bucket is whole blocks and keeps what it would keep over its every point.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator

MIN_MAX_POINTS = 4


def _layout(values: list[float], max_points: int) -> tuple[int, bool, bool]:
    """(buckets, the series has NaN, buckets keep their first NaN)."""
    has_nan = any(map(math.isnan, values))
    with_nan = has_nan and max_points > MIN_MAX_POINTS
    return max_points // (MIN_MAX_POINTS + 1 if with_nan else MIN_MAX_POINTS), has_nan, with_nan


def _keep(values: list[float], lo: int, hi: int, has_nan: bool, with_nan: bool) -> list[int]:
    """The indexes bucket [lo, hi) keeps, in order: first, last, first min, first max (first NaN)."""
    seg = values[lo:hi]
    keep = {lo, hi - 1}
    if not has_nan:
        # min/max of floats run in C; NaN would confuse them, hence the other branch.
        keep.add(lo + seg.index(min(seg)))
        keep.add(lo + seg.index(max(seg)))
    else:
        finite = [i for i, v in enumerate(seg) if v == v]
        if with_nan and len(finite) < len(seg):
            keep.add(lo + next(i for i, v in enumerate(seg) if v != v))
        if finite:
            keep.add(lo + min(finite, key=seg.__getitem__))
            keep.add(lo + max(finite, key=seg.__getitem__))
    return sorted(keep)


def bucket_picks(values: list[float], max_points: int) -> list[int]:
    """Indexes to keep of a whole series, at most max_points, buckets of consecutive points."""
    n = len(values)
    if n <= max_points:
        return list(range(n))
    buckets, has_nan, with_nan = _layout(values, max_points)
    picks: list[int] = []
    for b in range(buckets):
        picks.extend(_keep(values, b * n // buckets, (b + 1) * n // buckets, has_nan, with_nan))
    return picks


def block_picks(starts: list[int], values: list[float], n: int, max_points: int) -> list[int]:
    """Indexes to keep of a series of n points known only by its blocks' picks: pick i has value
    values[i] and lies in the block starting at point starts[i] (non-decreasing). A block belongs
    to bucket start * buckets // n, so buckets are whole blocks and each keeps at most 4 (5) picks."""
    buckets, has_nan, with_nan = _layout(values, max_points)
    picks: list[int] = []
    for lo, hi in _runs(starts, n, buckets):
        picks.extend(_keep(values, lo, hi, has_nan, with_nan))
    return picks


def _runs(starts: list[int], n: int, buckets: int) -> Iterator[tuple[int, int]]:
    """Non-empty [lo, hi) ranges of picks, one per bucket: bucket b holds starts >= ceil(b*n/buckets)."""
    lo = 0
    for b in range(1, buckets + 1):
        hi = bisect_left(starts, -(-b * n // buckets), lo)
        if hi > lo:
            yield lo, hi
        lo = hi
    if lo < len(starts):
        yield lo, len(starts)
