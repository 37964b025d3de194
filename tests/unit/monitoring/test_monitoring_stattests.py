"""The fast tests equal scipy's own functions on the raw samples, to 1e-9, including ties, tiny samples,
both of scipy's KS p-value methods, and Evidently's binning and count formulas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy import stats
from scipy.spatial import distance

from modelog_services.monitoring import stattests as st

# scipy's own warning when its exact KS p-value fails and it falls back (the engine does the same).
pytestmark = pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")


def close(a: float, b: float) -> bool:
    """Equal to 1e-9 (relative or absolute); NaN only equals NaN (a test with nothing to test)."""
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return bool(a == pytest.approx(b, rel=1e-9, abs=1e-9))


# Samples with many ties (small integers), continuous values, and mixtures of both.
samples = hs.one_of(
    hs.lists(hs.integers(-5, 5).map(float), min_size=1, max_size=300),
    hs.lists(hs.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=300),
    hs.lists(hs.sampled_from([0.0, 0.5, 1.0, 1e-9, -3.25, 7.0]), min_size=1, max_size=300),
)


def counts_of(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys = np.union1d(ref, cur)
    return (
        np.array([np.sum(ref == k) for k in keys], dtype=np.int64),
        np.array([np.sum(cur == k) for k in keys], dtype=np.int64),
    )


@settings(max_examples=300, deadline=None)
@given(samples, samples)
def test_ks_equals_scipy_on_any_small_samples(ref: list[float], cur: list[float]) -> None:
    r, c = np.sort(np.array(ref)), np.sort(np.array(cur))
    d, p = st.ks(r, c)
    expected = stats.ks_2samp(ref, cur)
    assert close(d, expected.statistic) and close(p, expected.pvalue)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # scipy's asymp p of 1-element samples
@settings(max_examples=300, deadline=None)
@given(samples, samples)
def test_ks_statistic_from_the_merge_equals_scipys_on_any_samples(ref: list[float], cur: list[float]) -> None:
    d = st.ks_statistic(st.merge(np.sort(np.array(ref)), np.sort(np.array(cur))))
    assert close(d, stats.ks_2samp(ref, cur, method="asymp").statistic)


@settings(max_examples=12, deadline=None)
@given(hs.integers(0, 2**32 - 1), hs.integers(10_001, 30_000), hs.integers(50, 5_000), hs.booleans())
def test_ks_equals_scipy_where_scipy_switches_to_the_asymptotic_p_value(
    seed: int, n_cur: int, n_ref: int, ties: bool
) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 1, n_ref)
    cur = rng.normal(0.05, 1.1, n_cur)
    if ties:
        ref, cur = np.round(ref, 1), np.round(cur, 1)
    d, p = st.ks(np.sort(ref), np.sort(cur))
    expected = stats.ks_2samp(ref, cur)
    assert close(d, expected.statistic) and close(p, expected.pvalue)


def test_ks_of_a_large_shifted_window_is_scipys_asymptotic_result() -> None:
    rng = np.random.default_rng(7)
    ref, cur = rng.normal(0, 1, 100_000), rng.normal(0.02, 1, 200_000)
    d, p = st.ks(np.sort(ref), np.sort(cur))
    expected = stats.ks_2samp(ref, cur)
    assert close(d, expected.statistic) and close(p, expected.pvalue)
    assert 0 < p < 0.05  # a p-value in the interesting range, not a trivially 0 or 1 one


@settings(max_examples=300, deadline=None)
@given(samples, samples)
def test_wasserstein_equals_scipy(ref: list[float], cur: list[float]) -> None:
    w = st.wasserstein(np.sort(np.array(ref)), np.sort(np.array(cur)))
    assert close(w, stats.wasserstein_distance(ref, cur))


def test_normed_wasserstein_is_evidentlys_formula_on_a_large_window() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(10, 3, 100_000), rng.gamma(2.0, 2.0, 1_000_003)  # not a multiple: split cells
    value = st.wasserstein_norm(np.sort(ref), np.sort(cur), float(np.std(ref)))
    assert close(value, stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001))


def test_normed_wasserstein_of_a_constant_reference_divides_by_the_floor() -> None:
    ref, cur = np.full(2000, 4.0), np.array([4.0, 4.5, 5.0])
    assert close(st.wasserstein_norm(ref, np.sort(cur), 0.0), stats.wasserstein_distance(ref, cur) / 0.001)


@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_chisquare_equals_scipy_on_evidentlys_expected_counts(ref: list[float], cur: list[float]) -> None:
    r, c = counts_of(np.array(ref), np.array(cur))
    stat, p = st.chisquare(r, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = stats.chisquare(c, r * (len(cur) / len(ref)))
    assert close(stat, expected.statistic) or (np.isinf(stat) and np.isinf(expected.statistic))
    assert close(p, expected.pvalue)


def test_chisquare_against_a_category_the_reference_never_saw_is_infinite_with_p_zero() -> None:
    stat, p = st.chisquare(np.array([50, 50, 0]), np.array([10, 10, 5]))
    assert np.isinf(stat) and p == 0.0


@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_jensenshannon_equals_scipy(ref: list[float], cur: list[float]) -> None:
    r, c = counts_of(np.array(ref), np.array(cur))
    expected = distance.jensenshannon(r / len(ref), c / len(cur))
    assert close(st.jensenshannon(r, c), expected)


def test_psi_is_evidentlys_formula_with_its_zero_filling() -> None:
    r, c = np.array([100, 0, 50, 850]), np.array([10, 30, 0, 60])
    ref, cur = r / r.sum(), c / c.sum()
    ref = np.where(ref == 0, 0.0001, ref)  # smallest nonzero share > 0.0001: Evidently fills 0.0001
    cur = np.where(cur == 0, 0.0001, cur)
    assert close(st.psi(r, c), float(np.sum((ref - cur) * np.log(ref / cur))))


def test_z_test_is_evidentlys_two_proportion_test() -> None:
    r, c = np.array([300, 700]), np.array([450, 550])
    z, p = st.z_test(r, c)
    p1, p2 = 700 / 1000, 550 / 1000
    pooled = (700 + 550) / 2000
    expected_z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 1000))
    assert close(z, expected_z) and close(p, 2 * (1 - stats.norm.cdf(abs(expected_z))))
    assert st.z_test(np.array([0, 10]), np.array([0, 3])) == (0.0, 1.0)  # one same value on both sides


@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_sturges_edges_and_sorted_histogram_equal_numpys(ref: list[float], cur: list[float]) -> None:
    combined = np.concatenate([ref, cur])
    edges = st.sturges_edges(float(combined.min()), float(combined.max()), combined.size)
    assert np.array_equal(edges, np.histogram_bin_edges(combined, bins="sturges"))
    assert np.array_equal(st.histogram_sorted(np.sort(np.array(ref)), edges), np.histogram(ref, edges)[0])


def test_integer_samples_bin_at_least_one_unit_wide_as_numpy_does() -> None:
    combined = np.arange(0, 12)
    edges = st.sturges_edges(0.0, 11.0, 100_000, integer=True)
    assert np.array_equal(
        edges, np.histogram_bin_edges(np.repeat(combined, 100_000 // 12 + 1)[:100_000], "sturges")
    )


def test_merge_gives_both_cdfs_at_each_distinct_value() -> None:
    ref, cur = np.array([1.0, 2.0, 2.0, 5.0]), np.array([0.0, 2.0, 3.0])
    m = st.merge(ref, cur)
    assert m.values.tolist() == [0.0, 1.0, 2.0, 2.0, 2.0, 3.0, 5.0]
    # at the last 2.0 (index 4): 3 of 4 reference values and 2 of 3 window values are <= 2
    assert (m.ref_cdf[4], m.cur_cdf[4]) == (0.75, 2 / 3)


@pytest.mark.parametrize(
    ("kind", "rows", "unique", "expected"),
    [
        ("numerical", 1000, 6, "ks"),
        ("numerical", 1000, 5, "chisquare"),
        ("numerical", 1000, 3, "chisquare"),
        ("numerical", 1000, 2, "z"),
        ("categorical", 1000, 50, "chisquare"),
        ("categorical", 1000, 2, "z"),
        ("numerical", 1001, 6, "wasserstein"),
        ("numerical", 1001, 5, "jensenshannon"),
        ("numerical", 1001, 2, "jensenshannon"),
        ("categorical", 1001, 2, "jensenshannon"),
        ("categorical", 100_000, 40, "jensenshannon"),
        ("text", 1000, 300, "ks"),
        ("text", 5000, 300, "wasserstein"),
    ],
)
def test_default_test_is_chosen_as_evidently_chooses(
    kind: str, rows: int, unique: int, expected: str
) -> None:
    assert st.default_stattest(kind, rows, unique) == expected


def test_verdicts_compare_as_evidently_does() -> None:
    assert st.is_drift("ks", 0.05, 0.05)  # KS: p <= threshold
    assert not st.is_drift("chisquare", 0.05, 0.05) and st.is_drift("chisquare", 0.049, 0.05)
    assert not st.is_drift("z", 0.05, 0.05)
    assert st.is_drift("wasserstein", 0.1, 0.1) and not st.is_drift("jensenshannon", 0.099, 0.1)
    assert not st.is_drift("psi", float("nan"), 0.1)
