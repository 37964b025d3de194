"""Downsampling a metric series for plotting keeps its shape: ends, extremes, spikes, NaN."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from modelog_services.tracking.history import History, _sort_by_step, bucket_picks

finite = st.floats(allow_nan=False, allow_infinity=True, width=64)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, min_size=1, max_size=400), st.integers(4, 120))
def test_picks_keep_ends_and_global_extremes_within_budget(values: list[float], max_points: int) -> None:
    picks = bucket_picks(values, max_points)
    assert picks == sorted(set(picks)) and len(picks) <= max_points
    assert picks[0] == 0 and picks[-1] == len(values) - 1
    kept = [values[i] for i in picks]
    assert min(kept) == min(values) and max(kept) == max(values)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(finite, st.just(math.nan)), min_size=1, max_size=400), st.integers(5, 120))
def test_nan_survives_and_does_not_hide_extremes(values: list[float], max_points: int) -> None:
    picks = bucket_picks(values, max_points)
    assert len(picks) <= max_points
    kept = [values[i] for i in picks]
    numbers = [v for v in values if not math.isnan(v)]
    if numbers:
        assert min(v for v in kept if not math.isnan(v)) == min(numbers)
        assert max(v for v in kept if not math.isnan(v)) == max(numbers)
    assert any(math.isnan(v) for v in kept) == any(math.isnan(v) for v in values)


def test_a_spike_in_a_long_series_survives() -> None:
    values = [0.0] * 100_000
    values[31_337] = 9.0
    picks = bucket_picks(values, 100)
    assert 31_337 in picks and len(picks) <= 100


def test_history_is_sorted_by_step_stably() -> None:
    h = History(steps=[2, 0, 1, 0], values=[20.0, 0.0, 10.0, 1.0], timestamps_ms=[1, 2, 3, 4], total=4)
    _sort_by_step(h)
    assert (h.steps, h.values, h.timestamps_ms) == ([0, 0, 1, 2], [0.0, 1.0, 10.0, 20.0], [2, 4, 3, 1])
