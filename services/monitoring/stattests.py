"""The drift tests, on arrays the engine has already cleaned (no nulls, no NaN, no infinities).

Each test does what Evidently 0.7.23 does (evidently/legacy/calculations/stattests), so a verdict here
is the verdict a user of Evidently would get, but from a form of the data that is cheap per window:
numerical tests take *sorted* arrays (the reference is sorted once per baseline) and walk one merge of
the two; categorical tests take counts. The small final step (a p-value, a distance of two count
vectors) is scipy's own function, so the statistics are scipy's to the last bits that summation order
allows.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

Floats = npt.NDArray[np.float64]
Counts = npt.NDArray[np.int64]

P_VALUE_TESTS = frozenset({"ks", "chisquare", "z"})
DEFAULT_THRESHOLDS = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
}
NUMERICAL_TESTS = frozenset({"ks", "wasserstein", "jensenshannon", "psi", "chisquare", "z"})
"""chisquare and z treat a numerical column's values as categories (Evidently's default does that for
columns with few distinct values)."""
CATEGORICAL_TESTS = frozenset({"chisquare", "z", "jensenshannon", "psi"})
KS_EXACT_MAX_N = 10_000
"""scipy's ks_2samp(method='auto') computes the exact p-value when both samples have at most this many."""
BINNED_MIN_UNIQUE = 20
"""Evidently bins a numerical column for JS/PSI only when the reference has more distinct values."""


def default_stattest(kind: str, reference_rows: int, n_unique: int) -> str:
    """Evidently's `_get_default_stattest`: by the reference's size (non-missing rows) and the number of
    distinct values in reference and current together. Text columns are tested on their lengths."""
    numerical = kind != "categorical"
    if reference_rows <= 1000:
        if numerical and n_unique > 5:
            return "ks"
        return "chisquare" if n_unique > 2 else "z"
    if numerical and n_unique > 5:
        return "wasserstein"
    return "jensenshannon"


def is_drift(stattest: str, score: float, threshold: float) -> bool:
    """Evidently's comparisons: KS drifts at p <= threshold, chi-square and z at p < threshold, the
    distances at score >= threshold. A NaN score is no evidence of drift."""
    if math.isnan(score):
        return False
    if stattest == "ks":
        return score <= threshold
    if stattest in P_VALUE_TESTS:
        return score < threshold
    return score >= threshold


@dataclass(frozen=True)
class Merged:
    """Both empirical CDFs at every distinct value of the two samples together."""

    values: Floats
    """The merged sorted sample (ties kept)."""
    ref_cdf: Floats
    cur_cdf: Floats
    """At position i: the share of each sample <= values[i] (exact where values[i] < values[i+1])."""


def merge(ref_sorted: Floats, cur_sorted: Floats) -> Merged:
    """One merge of two sorted samples: a binary search of the (smaller) reference into the window
    places every reference value, and the counts below each position follow by cumulative sums."""
    n_ref, n_cur = len(ref_sorted), len(cur_sorted)
    total = n_ref + n_cur
    at = np.searchsorted(cur_sorted, ref_sorted, side="left") + np.arange(n_ref)
    is_ref = np.zeros(total, dtype=bool)
    is_ref[at] = True
    values = np.empty(total, dtype=np.float64)
    values[at] = ref_sorted
    values[~is_ref] = cur_sorted
    ref_below = np.cumsum(is_ref, dtype=np.int64)
    cur_below = np.arange(1, total + 1, dtype=np.int64) - ref_below
    return Merged(values, ref_below / n_ref, cur_below / n_cur)


def ks(ref_sorted: Floats, cur_sorted: Floats) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov (two-sided): (D, p) as `scipy.stats.ks_2samp` returns them.

    Small samples get scipy's exact p-value from scipy itself (cheap at that size); otherwise D comes
    from the merge and the p-value from the same asymptotic distribution scipy uses."""
    n_ref, n_cur = len(ref_sorted), len(cur_sorted)
    if max(n_ref, n_cur) <= KS_EXACT_MAX_N:
        with (
            warnings.catch_warnings()
        ):  # "exact calculation unsuccessful, switching to asymp": scipy's choice
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ks_2samp(ref_sorted, cur_sorted)
        return float(result.statistic), float(result.pvalue)
    d = ks_statistic(merge(ref_sorted, cur_sorted))
    big, small = sorted([float(n_ref), float(n_cur)], reverse=True)
    en = big * small / (big + small)
    p = float(np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1))
    return d, p


def ks_statistic(m: Merged) -> float:
    """The largest gap between the two CDFs. scipy evaluates both at every data point with
    side='right'; within a run of ties only the run's last position has those values."""
    last = np.ones(len(m.values), dtype=bool)
    last[:-1] = m.values[1:] != m.values[:-1]
    diff = m.ref_cdf[last] - m.cur_cdf[last]
    return max(float(np.clip(-diff.min(), 0, 1)), float(diff.max()))


def wasserstein(ref_sorted: Floats, cur_sorted: Floats) -> float:
    """`scipy.stats.wasserstein_distance`, computed from the quantile functions instead of the CDFs
    (the same integral): W1 = integral over u of |A^-1(u) - B^-1(u)|. Over the larger sample's grid
    u in (j/n, (j+1)/n] the smaller sample's quantile is its value floor(j*m/n), so one np.repeat lines
    the two up; the grid cells that a step of the smaller sample splits get a correction. No merge,
    no binary search: a few passes over the window."""
    small, big = (ref_sorted, cur_sorted) if ref_sorted.size <= cur_sorted.size else (cur_sorted, ref_sorted)
    m, n = small.size, big.size
    i = np.arange(m + 1, dtype=np.int64)
    runs = np.diff((i * n + m - 1) // m)  # how many cells of the big grid start inside each small step
    total = float(np.abs(big - np.repeat(small, runs)).sum()) * m
    k = np.arange(1, m, dtype=np.int64)  # the small sample's steps at u = k/m
    cell = k * n // m
    split = k * n % m != 0
    k, cell = k[split], cell[split]
    # in a split cell the part above k/m, of width ((cell+1)*m - k*n) / (m*n), has small value k, not k-1
    width = (cell + 1) * m - k * n
    at = big[cell]
    total += float(np.dot(np.abs(at - small[k]) - np.abs(at - small[k - 1]), width))
    return total / (m * n)


def wasserstein_norm(ref_sorted: Floats, cur_sorted: Floats, ref_std: float) -> float:
    """Evidently's normed Wasserstein distance: divided by the reference's std (at least 0.001)."""
    return wasserstein(ref_sorted, cur_sorted) / max(ref_std, 0.001)


def chisquare(ref_counts: Counts, cur_counts: Counts) -> tuple[float, float]:
    """Evidently's chi-square: the window's counts against the reference's scaled to the window's size,
    over the categories of both (a category the reference never saw makes the statistic infinite)."""
    k_norm = cur_counts.sum() / ref_counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        result = stats.chisquare(cur_counts, ref_counts * k_norm)
    return float(result.statistic), float(result.pvalue)


def z_test(ref_counts: Counts, cur_counts: Counts) -> tuple[float, float]:
    """Evidently's two-proportion z-test on the share of the first category (keys in sorted order);
    (z, p). p is computed as Evidently does, 2 * (1 - cdf(|z|))."""
    n1, n2 = int(ref_counts.sum()), int(cur_counts.sum())
    ref_present, cur_present = ref_counts > 0, cur_counts > 0
    if ref_present.sum() == 1 and cur_present.sum() == 1 and np.array_equal(ref_present, cur_present):
        return 0.0, 1.0
    p1 = float(n1 - ref_counts[0]) / n1
    p2 = float(n2 - cur_counts[0]) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(z), float(2 * (1 - stats.norm.cdf(np.abs(z))))


def _fill_zeroes(percents: Floats) -> Floats:
    """Evidently's `feel_zeroes` for PSI: empty buckets get a tiny share so the log is finite."""
    nonzero = percents[percents != 0]
    smallest = float(nonzero.min())
    out = percents.copy()
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


def jensenshannon(ref_counts: Counts, cur_counts: Counts) -> float:
    """`scipy.spatial.distance.jensenshannon` of the two shares (natural log, as Evidently calls it)."""
    return float(distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()))


def psi(ref_counts: Counts, cur_counts: Counts) -> float:
    """Evidently's population stability index over the same buckets."""
    ref = _fill_zeroes(ref_counts / ref_counts.sum())
    cur = _fill_zeroes(cur_counts / cur_counts.sum())
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def sturges_edges(lo: float, hi: float, size: int, integer: bool = False) -> Floats:
    """`np.histogram_bin_edges(combined, bins="sturges")` from the combined sample's min, max and size,
    which is what Evidently bins a numerical column by for JS and PSI (no need to concatenate)."""
    first, last = lo, hi
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = (hi - lo) / (np.log2(size) + 1.0)
    if integer and width < 1:
        width = 1.0
    bins = int(np.ceil((last - first) / width)) if width else 1
    return np.linspace(first, last, bins + 1, endpoint=True, dtype=np.float64)


def histogram_sorted(sorted_values: Floats, edges: Floats) -> Counts:
    """`np.histogram(values, edges)[0]` of a sorted sample by binary search: bins are [e_i, e_i+1)
    except the last, which is closed, and values outside the edges are in no bin."""
    left = np.searchsorted(sorted_values, edges, side="left")
    left[-1] = np.searchsorted(sorted_values, edges[-1], side="right")
    return np.diff(left).astype(np.int64)
