"""Comparing runs in the browser: runs picked in the runs table (boxes, Shift+click, Space on the
focused row) open a compare page whose URL holds them and the baseline; the table shows what differs
from the baseline; metric charts overlay one series per run; a parallel-coordinates plot and a
scatter relate params to a metric. 50 runs x 10 metrics is timed (printed, never asserted)."""

from __future__ import annotations

import re
import urllib.parse

from tests.integration.gatewayfix import Platform
from tests.ui.conftest import Tab
from tests.ui.seed import SWEEP_CONSTANT, SWEEP_METRICS, SWEEP_RUNS, Seeded


def query(tab: Tab) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(tab.page.url).query))


def diff_keys(tab: Tab) -> list[str]:
    keys = tab.page.locator("[data-testid=diff-table] tbody tr[data-key]").evaluate_all(
        "rows => rows.map(r => r.dataset.key)"
    )
    return [str(k) for k in keys]


def test_runs_picked_in_the_table_open_a_comparison_of_what_differs(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    tab.open(f"/experiments/{seeded.sweep_experiment_id}")
    tab.page.wait_for_selector("[data-testid=runs-table] [role=row][aria-rowindex]")
    compare = tab.page.locator("[data-testid=compare]")
    assert compare.is_disabled()  # nothing picked yet

    newest = list(reversed(seeded.sweep))  # the table shows newest first
    boxes = tab.page.locator("[data-testid=runs-table] [role=row][aria-rowindex] input[type=checkbox]")
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])  # a range: rows 0 to 2
    # the keyboard: the grid keeps the focus, arrows move the focused row, Space picks it
    tab.page.keyboard.press("ArrowDown")
    tab.page.keyboard.press("Space")
    assert "4 picked" in tab.page.inner_text("[data-testid=picked]")
    picked = tab.page.locator("[data-testid=runs-table] [role=row][aria-selected=true] .attr-name a")
    assert picked.all_inner_texts() == ["sweep-49", "sweep-48", "sweep-47", "sweep-46"]
    tab.shot("compare-picked")

    compare.click()
    tab.page.wait_for_url(re.compile(r"/compare\?"))
    assert query(tab)["runs"] == ",".join(newest[:4])
    tab.page.wait_for_selector("[data-testid=compare-root][data-drawn]")

    # only what differs from the baseline: the params every run shares are left out...
    keys = diff_keys(tab)
    assert {"lr", "layers", "optimizer", "acc"} <= set(keys)
    assert not set(SWEEP_CONSTANT) & set(keys), keys
    # ...until asked for, which the URL remembers
    tab.page.click("[data-testid=show-all]")
    tab.page.wait_for_function("() => new URL(location.href).searchParams.get('all') === '1'")
    assert set(SWEEP_CONSTANT) <= set(diff_keys(tab))
    tab.page.click("[data-testid=show-all]")

    # the baseline is the first run until another is made it; its column comes first
    heads = tab.page.locator("[data-testid=diff-table] thead th a")
    assert heads.all_inner_texts()[0] == "sweep-49"
    tab.page.click("button[aria-label='make baseline: sweep-47']")
    tab.page.wait_for_function("id => new URL(location.href).searchParams.get('base') === id", arg=newest[2])
    assert heads.all_inner_texts()[0] == "sweep-47"
    assert tab.page.input_value("[data-testid=baseline]") == newest[2]
    # cells that differ from the new baseline are marked, its own never are
    lr_row = tab.page.locator("[data-testid=diff-table] tr[data-key=lr] td")
    assert "diff" not in (lr_row.nth(0).get_attribute("class") or "")
    assert any("diff" in (c or "") for c in lr_row.evaluate_all("cs => cs.map(c => c.className)"))

    # one chart per metric, one series per run
    for metric in SWEEP_METRICS:
        chart = tab.page.locator(f"[data-testid=overlay-{metric}]")
        assert chart.get_attribute("data-series") == "4", metric
        assert chart.locator("canvas").count() == 1
    # params against a metric: a line and a dot per run
    assert tab.page.locator("[data-testid=parallel] path.pc-line").count() == 4
    assert tab.page.locator("[data-testid=scatter] circle.sc-dot").count() == 4
    labels = tab.page.locator("[data-testid=parallel] .pc-label").all_text_contents()
    assert labels[-1] == "acc" and "lr" in labels and "dataset" not in labels
    tab.page.select_option("#rel-metric", "val_loss")
    tab.page.wait_for_function("() => new URL(location.href).searchParams.get('metric') === 'val_loss'")
    assert tab.page.locator("[data-testid=parallel] .pc-label").all_text_contents()[-1] == "val_loss"
    tab.shot("compare-4", tall=True)

    tab.page.reload()  # the URL alone restores the view
    tab.page.wait_for_selector("[data-testid=compare-root][data-drawn]")
    assert tab.page.locator("[data-testid=diff-table] thead th a").all_inner_texts()[0] == "sweep-47"
    assert tab.page.input_value("#rel-metric") == "val_loss"
    assert tab.csp_violations() == []


def test_fifty_runs_by_ten_metrics_are_compared_and_timed(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    tab.open("/compare?runs=" + ",".join(seeded.sweep))
    tab.page.wait_for_selector("[data-testid=compare-root][data-drawn]", timeout=60_000)
    timing = tab.page.evaluate(
        """() => {
          const drawn = performance.getEntriesByName('compare-drawn')[0].startTime;
          const calls = performance.getEntriesByType('resource')
            .filter(e => /[/]GetMetricHistor(y|ies)$/.test(e.name));
          const batched = calls.filter(e => e.name.endsWith('/GetMetricHistories')).length;
          return {drawn, calls: calls.length, batched, lastCall: Math.max(...calls.map(e => e.responseEnd))};
        }"""
    )
    # from navigation start to the last chart drawn (a benchmark's job to judge: tests/bench/bench_ui.py)
    print(
        f"\ncompare {SWEEP_RUNS} runs x {len(SWEEP_METRICS)} metrics: drawn {timing['drawn']:.0f} ms "
        f"after navigation ({timing['calls']} history calls, the last answered at "
        f"{timing['lastCall']:.0f} ms)"
    )
    # Every run x metric history in one batched call (GetMetricHistories), not one call each.
    assert (timing["calls"], timing["batched"]) == (1, 1)
    for metric in SWEEP_METRICS:
        assert tab.page.get_attribute(f"[data-testid=overlay-{metric}]", "data-series") == str(SWEEP_RUNS)
    assert tab.page.locator("[data-testid=parallel] path.pc-line").count() == SWEEP_RUNS
    assert tab.page.locator("[data-testid=diff-table] thead th a").count() == SWEEP_RUNS
    tab.shot("compare-50", tall=True)
    assert tab.csp_violations() == []
