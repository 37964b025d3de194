"""The runs table's saved views (a name for the URL state, kept in the browser per experiment) and
its grouping by a param with a metric's count, min, mean and max per group, in a real browser."""

from __future__ import annotations

import statistics
import urllib.parse
from typing import Any

from tests.integration.gatewayfix import Platform
from tests.ui.conftest import Tab, api
from tests.ui.seed import Seeded


def url_params(tab: Tab) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(tab.page.url).query))


def all_runs(platform: Platform, experiment_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    token = ""
    while True:
        page = api(
            platform,
            "modelog.tracking.v1.Tracking/SearchRuns",
            {"experimentIds": [experiment_id], "pageSize": 1000, "pageToken": token},
        )
        runs += page.get("runs", [])
        token = page.get("nextPageToken", "")
        if not token:
            return runs


def test_a_saved_view_reopens_its_filter_columns_and_sort_and_can_be_deleted(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    base = f"/experiments/{seeded.experiment_id}"
    query = "filter=params.optimizer+%3D+%27adam%27&sort=metrics.acc+DESC&cols=m:acc,p:lr,p:optimizer"
    tab.open(f"{base}?{query}")
    tab.page.wait_for_selector("[data-testid=runs-table] [aria-rowindex]")
    want = url_params(tab)

    tab.page.click("[data-testid=saved-views]")
    tab.page.fill("#view-name", "best adam")
    tab.page.click("text=Save current view")
    tab.page.wait_for_selector("ul.views li.on :text('best adam')")
    tab.page.wait_for_selector("[data-testid=saved-views]:has-text('View: best adam')")

    # elsewhere, then back through the list: the view comes back as it was saved
    tab.open(base)
    tab.page.wait_for_selector("[data-testid=runs-table] [aria-rowindex]")
    assert url_params(tab) == {}
    tab.page.click("[data-testid=saved-views]")
    tab.page.click("ul.views a:has-text('best adam')")
    tab.page.wait_for_function("() => new URL(location.href).searchParams.get('sort') === 'metrics.acc DESC'")
    assert url_params(tab) == want
    # the filter is the view's: only adam runs, once the search answered
    tab.page.wait_for_function(
        "() => { const c = [...document.querySelectorAll("
        "'[data-testid=runs-table] [aria-rowindex] .vt-cell:nth-child(8)')];"
        " return c.length > 0 && c.every(e => e.textContent === 'adam') }"
    )
    tab.page.wait_for_selector("[data-testid=run-count]:text-is('80 runs')")
    tab.shot("saved-views")

    # kept across a reload (this browser's storage), then deleted
    tab.page.reload()
    tab.page.click("[data-testid=saved-views]")
    tab.page.click("button[aria-label='Delete the view best adam']")
    tab.page.wait_for_selector(".views-popover :text('No saved view yet.')")
    tab.page.reload()
    tab.page.click("[data-testid=saved-views]")
    tab.page.wait_for_selector(".views-popover :text('No saved view yet.')")
    assert tab.csp_violations() == []


def test_runs_group_by_a_param_with_the_metric_aggregated_per_group(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    runs = all_runs(platform, seeded.experiment_id)
    groups: dict[str, list[float]] = {}
    for r in runs:
        acc = next((m["last"] for m in r.get("metrics", []) if m["key"] == "acc"), None)
        groups.setdefault(r.get("params", {}).get("optimizer", "(not set)"), []).append(acc)

    tab.sign_in(platform.token)
    tab.open(f"/experiments/{seeded.experiment_id}")
    tab.page.wait_for_selector("[data-testid=runs-table] [aria-rowindex]")
    tab.page.select_option("[data-testid=group-by]", "p:optimizer")
    tab.page.select_option("[data-testid=group-metric]", "m:acc")
    tab.page.wait_for_function(
        "n => document.querySelector('[data-testid=group-note]')?.textContent.includes(`over ${n} runs`)",
        arg=len(runs),
    )
    assert url_params(tab)["group"] == "p:optimizer" and url_params(tab)["agg"] == "m:acc"
    shown = {}
    for body in tab.page.locator("[data-testid=groups] tbody.group").all():
        stat = {s: body.locator(f"[data-stat={s}]").inner_text() for s in ("count", "min", "mean", "max")}
        shown[body.get_attribute("data-group")] = stat
    assert set(shown) == set(groups)
    for name, values in groups.items():
        measured = [float(v) for v in values if v is not None]
        assert int(shown[name]["count"]) == len(values)
        assert abs(float(shown[name]["mean"]) - statistics.fmean(measured)) < 1e-4
        assert abs(float(shown[name]["min"]) - min(measured)) < 1e-4
        assert abs(float(shown[name]["max"]) - max(measured)) < 1e-4

    # collapsed until opened; what is open is in the URL, so a reload keeps it
    assert tab.page.locator("tbody[data-group=sgd] tr.group-run").count() == 0
    tab.page.click("tbody[data-group=sgd] button.group-toggle")
    tab.page.wait_for_function("() => new URL(location.href).searchParams.get('open') === 'sgd'")
    assert tab.page.locator("tbody[data-group=sgd] tr.group-run").count() == len(groups["sgd"])
    tab.page.reload()
    tab.page.wait_for_selector("tbody[data-group=sgd] tr.group-run")
    assert tab.page.locator("tbody[data-group=adam] tr.group-run").count() == 0
    assert tab.page.get_attribute("tbody[data-group=sgd] button.group-toggle", "aria-expanded") == "true"
    tab.shot("runs-grouped")
    tab.page.click("tbody[data-group=sgd] button.group-toggle")
    tab.page.wait_for_function("() => !new URL(location.href).searchParams.has('open')")
    assert tab.page.locator("tr.group-run").count() == 0
    assert tab.csp_violations() == []
