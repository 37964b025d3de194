"""The drift report is one self-contained page: the verdict on top, drifted columns first, every
user-provided string inert."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from modelog_services.monitoring.drift import (
    ColumnSpec,
    DriftOptions,
    DriftResult,
    PreparedReference,
    Schema,
    detect_drift,
)
from modelog_services.monitoring.report import CURRENT_COLOR, REFERENCE_COLOR, render_report

EVIL = "<script>alert(1)</script>"
EVIL_CATEGORY = '<img src=x onerror="alert(2)">'


def drifted_result() -> DriftResult:
    rng = np.random.default_rng(0)
    schema = Schema(
        (ColumnSpec("steady", "numerical"), ColumnSpec(EVIL, "numerical"), ColumnSpec("plan", "categorical"))
    )
    ref = pa.table(
        {"steady": rng.normal(0, 1, 5000), EVIL: rng.normal(0, 1, 5000), "plan": rng.choice(["a", "b"], 5000)}
    )
    cur = pa.table(
        {
            "steady": rng.normal(0, 1, 1000),
            EVIL: rng.normal(3, 1, 1000),
            "plan": rng.choice(["a", "b", EVIL_CATEGORY], 1000, p=[0.2, 0.2, 0.6]),
        }
    )
    return detect_drift(PreparedReference(ref, schema), cur, DriftOptions(drift_share=0.5))


def test_user_strings_are_escaped_so_a_script_column_name_is_inert() -> None:
    html = render_report(
        f"title {EVIL}", drifted_result(), window={EVIL: EVIL_CATEGORY}, performance={EVIL: 1.0}
    )
    assert not re.search(r"<\s*script", html, re.IGNORECASE)
    assert "<img" not in html and "onerror=" not in html.replace("onerror=&quot;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html


def test_the_page_loads_nothing_from_anywhere() -> None:
    html = render_report("window 3", drifted_result())
    for external in ("http://", "https://", "<link", "@import", "url(", "<script"):
        assert external not in html
    assert not re.search(r"<[^>]*\ssrc=", html)  # no tag loads anything (escaped text is no tag)
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', html))


def test_the_verdict_and_the_drifted_columns_come_first() -> None:
    result = drifted_result()
    assert set(result.drifted_columns) == {EVIL, "plan"} and result.dataset_drift
    html = render_report("window 3", result)
    assert "Dataset drift detected" in html and "2 of 3 columns drifted (66.7%)" in html
    cards = re.findall(r'<section class="card( drift)?" id="col-(\d)">', html)
    assert [bool(drift) for drift, _ in cards] == [True, True, False]
    assert html.index("Dataset drift detected") < html.index('id="col-')


def test_each_column_draws_both_distributions_on_the_same_bins() -> None:
    result = drifted_result()
    html = render_report("window 3", result)
    charts = re.findall(r"<svg .*?</svg>", html)
    assert len(charts) == 3
    for chart, column in zip(charts, sorted(result.columns, key=lambda c: not c.drifted), strict=True):
        assert chart.count(f'fill="{REFERENCE_COLOR}"') == len(column.reference_hist)
        assert chart.count(f'fill="{CURRENT_COLOR}"') == len(column.current_hist)


def test_a_column_without_values_in_the_window_says_so() -> None:
    schema = Schema((ColumnSpec("x", "numerical"),))
    prepared = PreparedReference(pa.table({"x": np.arange(100.0)}), schema)
    result = detect_drift(prepared, pa.table({"x": pa.array([None], pa.float64())}))
    html = render_report("empty", result)
    assert "no values to draw" in html and "every value in the window is missing" in html
