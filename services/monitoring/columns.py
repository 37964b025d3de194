"""One column's drift: pick the test (the column's own, the global override, or Evidently's default),
run it on the prepared reference and the window, and draw the two distributions for the report."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from . import profiles as pf
from . import stattests as st
from .drift_types import ColumnDrift, ColumnProfile, ColumnSpec, DriftOptions

REPORT_BINS = 24
REPORT_TOP_CATEGORIES = 12
NEW_CATEGORIES_KEPT = 50


KEEP_DISTINCT = 64
"""A reference column with at most this many distinct values keeps them with their counts (tests on
values as categories need them); a continuous one keeps only the count, not a second copy."""


@dataclass(frozen=True)
class Numbers:
    """A numerical (or text-length) reference column, sorted once."""

    sorted: pf.Floats
    missing: int
    integer: bool
    std: float
    n_distinct: int
    kept: tuple[pf.Floats, pf.Counts] | None
    """The distinct values and their counts, when there are at most KEEP_DISTINCT."""

    @classmethod
    def of(cls, values: pf.Floats, missing: int, integer: bool) -> Numbers:
        ordered = np.sort(values)
        n_distinct = pf.count_distinct_sorted(ordered)
        kept = pf.distinct_sorted(ordered) if n_distinct <= KEEP_DISTINCT else None
        return cls(ordered, missing, integer, float(np.std(ordered)), n_distinct, kept)

    def distinct(self) -> tuple[pf.Floats, pf.Counts]:
        """The distinct values and their counts (computed again for a continuous column: rare, only
        when a monitor asks for chi-square or z on one)."""
        kept = self.kept
        return kept if kept is not None else pf.distinct_sorted(self.sorted)


@dataclass(frozen=True)
class Categories:
    """A categorical reference column: categories in sorted order and their counts."""

    keys: list[str]
    counts: pf.Counts
    index: dict[str, int]
    missing: int


def column_drift(
    spec: ColumnSpec,
    prepared: Numbers | Categories,
    column: pf.Column,
    options: DriftOptions,
    profile_edges: tuple[float, ...] | None = None,
    want_profile: bool = False,
) -> tuple[ColumnDrift, ColumnProfile | None]:
    """The column's drift and, when asked, the window's profile of it from the same sorted values or
    counts (on `profile_edges`, the reference's bins)."""
    chosen = spec.stattest or options.stattest
    threshold = spec.threshold if spec.threshold is not None else options.threshold
    if isinstance(prepared, Categories):
        drift, keys, counts, missing = _categorical(spec, prepared, column, chosen, threshold)
        return drift, category_profile(spec, keys, counts, missing) if want_profile else None
    drift, cur, missing = _numerical(spec, prepared, column, chosen, threshold)
    return drift, numeric_profile(spec, cur, missing, profile_edges) if want_profile else None


def numeric_profile(
    spec: ColumnSpec, sorted_values: pf.Floats, missing: int, edges: tuple[float, ...] | None
) -> ColumnProfile:
    rows = sorted_values.size + missing
    if sorted_values.size == 0:
        return ColumnProfile(spec.name, spec.kind, 0, 1.0 if rows else 0.0, missing=missing)
    bin_edges = (
        np.asarray(edges, dtype=np.float64) if edges else pf.equal_edges(sorted_values[0], sorted_values[-1])
    )
    return ColumnProfile(
        name=spec.name,
        kind=spec.kind,
        count=int(sorted_values.size),
        missing_share=missing / rows,
        min=float(sorted_values[0]),
        max=float(sorted_values[-1]),
        mean=float(sorted_values.mean()),
        std=float(sorted_values.std()),
        quantiles=pf.quantiles_sorted(sorted_values),
        bin_edges=tuple(float(e) for e in bin_edges),
        bin_counts=tuple(int(c) for c in st.histogram_sorted(sorted_values, bin_edges)),
        missing=missing,
        distinct=pf.count_distinct_sorted(sorted_values),
    )


def category_profile(spec: ColumnSpec, keys: list[str], counts: pf.Counts, missing: int) -> ColumnProfile:
    rows = int(counts.sum()) + missing
    top = np.argsort(-counts, kind="stable")[: pf.PROFILE_TOP_CATEGORIES]
    return ColumnProfile(
        name=spec.name,
        kind=spec.kind,
        count=int(counts.sum()),
        missing_share=missing / rows if rows else 0.0,
        frequencies={keys[i]: int(counts[i]) for i in top},
        missing=missing,
        distinct=len(keys),
    )


def _nothing_to_test(spec: ColumnSpec, test: str, threshold: float | None) -> ColumnDrift:
    """A window where the column is entirely missing: Evidently refuses to compute; a monitor must say
    loudly that a feature stopped arriving, so the column counts as drifted."""
    return ColumnDrift(
        column=spec.name,
        kind=spec.kind,
        stattest=test,
        statistic=math.nan,
        p_value=None,
        threshold=threshold if threshold is not None else st.DEFAULT_THRESHOLDS[test],
        drifted=True,
        missing_share=1.0,
        note="every value in the window is missing: nothing to compare, counted as drifted",
    )


def _verdict(
    test: str, statistic: float, p_value: float | None, threshold: float | None
) -> tuple[float, bool]:
    limit = threshold if threshold is not None else st.DEFAULT_THRESHOLDS[test]
    return limit, st.is_drift(test, p_value if p_value is not None else statistic, limit)


# ---------------------------------------------------------------- numerical


def _aligned(
    ref_values: pf.Floats, ref_counts: pf.Counts, cur_values: pf.Floats, cur_counts: pf.Counts
) -> tuple[pf.Floats, pf.Counts, pf.Counts]:
    """Both samples' counts over the distinct values of both, in sorted order (as Evidently's keys)."""
    union = np.union1d(ref_values, cur_values)
    r = np.zeros(union.size, dtype=np.int64)
    c = np.zeros(union.size, dtype=np.int64)
    r[np.searchsorted(union, ref_values)] = ref_counts
    c[np.searchsorted(union, cur_values)] = cur_counts
    return union, r, c


def _numerical(
    spec: ColumnSpec, ref: Numbers, column: pf.Column, chosen: str, threshold: float | None
) -> tuple[ColumnDrift, pf.Floats, int]:
    values, missing, integer = pf.numeric_values(column, text=spec.kind == "text")
    if values.size == 0:
        test = chosen or st.default_stattest(spec.kind, ref.sorted.size, ref.n_distinct)
        return _nothing_to_test(spec, test, threshold), values, missing
    cur = np.sort(values)
    few = ref.n_distinct <= REPORT_TOP_CATEGORIES
    cur_distinct, cur_distinct_counts = pf.distinct_sorted(cur) if few else (cur[:0], np.empty(0, np.int64))
    union, ref_counts, cur_counts = (
        _aligned(*ref.distinct(), cur_distinct, cur_distinct_counts) if few else (None, None, None)
    )
    n_unique = union.size if union is not None else ref.n_distinct
    test = chosen or st.default_stattest(spec.kind, ref.sorted.size, n_unique)

    p_value: float | None = None
    if test == "ks":
        statistic, p_value = st.ks(ref.sorted, cur)
    elif test == "wasserstein":
        statistic = st.wasserstein_norm(ref.sorted, cur, ref.std)
    else:
        if test in ("jensenshannon", "psi") and ref.n_distinct > st.BINNED_MIN_UNIQUE:
            edges = st.sturges_edges(
                min(ref.sorted[0], cur[0]),
                max(ref.sorted[-1], cur[-1]),
                ref.sorted.size + cur.size,
                ref.integer and integer,
            )
            r, c = st.histogram_sorted(ref.sorted, edges), st.histogram_sorted(cur, edges)
        elif ref_counts is not None and cur_counts is not None:
            r, c = ref_counts, cur_counts
        else:
            cur_distinct, cur_distinct_counts = pf.distinct_sorted(cur)
            _, r, c = _aligned(*ref.distinct(), cur_distinct, cur_distinct_counts)
        if test == "chisquare":
            statistic, p_value = st.chisquare(r, c)
        elif test == "z":
            statistic, p_value = st.z_test(r, c)
        elif test == "jensenshannon":
            statistic = st.jensenshannon(r, c)
        else:
            statistic = st.psi(r, c)
    limit, drifted = _verdict(test, statistic, p_value, threshold)

    below = int(np.searchsorted(cur, ref.sorted[0], side="left"))
    above = cur.size - int(np.searchsorted(cur, ref.sorted[-1], side="right"))
    if (
        union is not None
        and ref_counts is not None
        and cur_counts is not None
        and union.size <= REPORT_TOP_CATEGORIES
    ):
        labels = [pf.fmt(float(v)) for v in union]
        ref_hist = tuple(zip(labels, (ref_counts / ref.sorted.size).tolist(), strict=True))
        cur_hist = tuple(zip(labels, (cur_counts / cur.size).tolist(), strict=True))
        edges_out: tuple[float, ...] = ()
    else:
        lo, hi = _display_range(ref.sorted, cur)
        if ref.integer and integer and hi - lo < 2 * REPORT_BINS:
            # counts: one bar per whole number, no empty bins between them
            edges = np.arange(math.floor(lo), math.floor(hi) + 2, dtype=np.float64)
            labels = [pf.fmt(v) for v in edges[:-1].tolist()]
        else:
            edges = pf.equal_edges(lo, hi, REPORT_BINS)
            labels = [f"{pf.fmt(a)} to {pf.fmt(b)}" for a, b in itertools.pairwise(edges.tolist())]
        labels[0], labels[-1] = f"{labels[0]} and below", f"{labels[-1]} and above"
        ref_hist = tuple(
            zip(labels, (_clipped_histogram(ref.sorted, edges) / ref.sorted.size).tolist(), strict=True)
        )
        cur_hist = tuple(zip(labels, (_clipped_histogram(cur, edges) / cur.size).tolist(), strict=True))
        edges_out = tuple(edges.tolist())
    drift = ColumnDrift(
        column=spec.name,
        kind=spec.kind,
        stattest=test,
        statistic=statistic,
        p_value=p_value,
        threshold=limit,
        drifted=drifted,
        missing_share=missing / (cur.size + missing),
        out_of_range_share=(below + above) / cur.size,
        reference_hist=ref_hist,
        current_hist=cur_hist,
        hist_edges=edges_out,
    )
    return drift, cur, missing


def _display_range(ref: pf.Floats, cur: pf.Floats) -> tuple[float, float]:
    """The 0.5th to 99.5th percentile of either sample: a long tail (incomes, latencies) would
    otherwise squeeze every bar into the first bin; the tails land in the end bins."""

    def at(a: pf.Floats, q: float) -> float:
        return float(a[int(q * (a.size - 1))])

    lo, hi = min(at(ref, 0.005), at(cur, 0.005)), max(at(ref, 0.995), at(cur, 0.995))
    if lo >= hi:
        return min(float(ref[0]), float(cur[0])), max(float(ref[-1]), float(cur[-1]))
    return lo, hi


def _clipped_histogram(sorted_values: pf.Floats, edges: pf.Floats) -> pf.Counts:
    counts = st.histogram_sorted(sorted_values, edges)
    counts[0] += int(np.searchsorted(sorted_values, edges[0], side="left"))
    counts[-1] += sorted_values.size - int(np.searchsorted(sorted_values, edges[-1], side="right"))
    return counts


# ---------------------------------------------------------------- categorical


def _categorical(
    spec: ColumnSpec, ref: Categories, column: pf.Column, chosen: str, threshold: float | None
) -> tuple[ColumnDrift, list[str], pf.Counts, int]:
    keys, counts, missing = pf.category_counts(column)
    if not keys:
        test = chosen or st.default_stattest("categorical", int(ref.counts.sum()), len(ref.keys))
        return _nothing_to_test(spec, test, threshold), keys, counts, missing
    new = [i for i, k in enumerate(keys) if k not in ref.index]
    union = ref.keys if not new else sorted([*ref.keys, *(keys[i] for i in new)])
    at = {k: i for i, k in enumerate(union)} if new else ref.index
    r = np.zeros(len(union), dtype=np.int64)
    c = np.zeros(len(union), dtype=np.int64)
    r[[at[k] for k in ref.keys]] = ref.counts
    c[[at[k] for k in keys]] = counts
    test = chosen or st.default_stattest("categorical", int(ref.counts.sum()), len(union))

    p_value: float | None = None
    if test == "chisquare":
        statistic, p_value = st.chisquare(r, c)
    elif test == "z":
        statistic, p_value = st.z_test(r, c)
    elif test == "jensenshannon":
        statistic = st.jensenshannon(r, c)
    else:
        statistic = st.psi(r, c)
    limit, drifted = _verdict(test, statistic, p_value, threshold)

    total = int(c.sum())
    ref_share, cur_share = r / r.sum(), c / total
    order = np.lexsort((-ref_share, -np.maximum(ref_share, cur_share)))
    shown, rest = order[:REPORT_TOP_CATEGORIES], order[REPORT_TOP_CATEGORIES:]
    ref_hist = [(union[i], float(ref_share[i])) for i in shown]
    cur_hist = [(union[i], float(cur_share[i])) for i in shown]
    if rest.size:
        label = f"(other {rest.size})"
        ref_hist.append((label, float(ref_share[rest].sum())))
        cur_hist.append((label, float(cur_share[rest].sum())))
    new_sorted = sorted(new, key=lambda i: (-counts[i], keys[i]))
    drift = ColumnDrift(
        column=spec.name,
        kind=spec.kind,
        stattest=test,
        statistic=statistic,
        p_value=p_value,
        threshold=limit,
        drifted=drifted,
        missing_share=missing / (total + missing),
        new_categories=tuple(keys[i] for i in new_sorted[:NEW_CATEGORIES_KEPT]),
        new_category_share=float(counts[new].sum()) / total if new else 0.0,
        reference_hist=tuple(ref_hist),
        current_hist=tuple(cur_hist),
    )
    return drift, keys, counts, missing
