"""Datasets (versions and the diff between two), monitors (windows, the per-column drift heat map,
alerts, the drift report) and the audit page (one timeline over every log, filtered by service, type,
actor and entity; chain verification; the signed export) in a real browser against seeded data."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.gatewayfix import Platform
from tests.ui.conftest import Tab, api
from tests.ui.seed import Seeded
from tests.ui.seed_more import MONITOR_WINDOWS, SHIFT


def test_a_dataset_lists_its_versions_and_diffs_files_rows_and_columns(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    v1, v2 = seeded.dataset_versions
    tab.sign_in(platform.token)
    tab.open("/datasets")
    tab.page.click("table[aria-label=Datasets] a:text-is('customers')")
    tab.page.wait_for_url("**/datasets/customers")
    versions = tab.page.locator(
        "table[aria-label='Dataset versions'] tbody tr td:first-child"
    ).all_inner_texts()
    assert versions == [f"v{v2}", f"v{v1}"]

    # the latest against its parent, by default
    diff = tab.page.wait_for_selector("[data-testid=dataset-diff]")
    assert diff is not None
    assert "1 added · 0 removed · 1 modified" in diff.inner_text()
    changes = {
        r.locator("td.mono").inner_text(): r.locator(".badge").inner_text()
        for r in tab.page.locator("table[aria-label='Changed files'] tbody tr").all()
    }
    assert changes == {"README.md": "added", "customers.csv": "modified"}
    csv = tab.page.inner_text("[data-testid=csv-diff]")
    assert "rows: 100 → 120 (+20)" in csv and "added plan" in csv
    tab.shot("dataset-diff")

    # the other way round, chosen in the URL's terms
    tab.page.select_option("select[aria-label='Compare from version']", str(v2))
    tab.page.select_option("select[aria-label='Compare to version']", str(v1))
    tab.page.wait_for_selector("[data-testid=dataset-diff] :text('0 added · 1 removed · 1 modified')")
    assert "removed plan" in tab.page.inner_text("[data-testid=csv-diff]")
    assert f"v={v1}" in tab.page.url and f"vs={v2}" in tab.page.url
    assert tab.csp_violations() == []


def test_a_monitor_shows_its_windows_a_drift_heat_map_alerts_and_the_report(
    tab: Tab, platform: Platform, seeded: Seeded, tmp_path: Path
) -> None:
    tab.sign_in(platform.token)
    tab.open("/monitors")
    row = tab.page.locator("table[aria-label=Monitors] tbody tr", has_text=seeded.monitor)
    assert "churn@champion" in row.inner_text() and "1 open" in row.inner_text()
    row.locator(f"a:text-is('{seeded.monitor}')").click()

    tab.page.wait_for_selector("[data-testid=heatmap] .heat-cell")
    cells = tab.page.locator("[data-testid=heatmap] .heat-cell")
    columns = ["tenure", "spend", "calls", "age", "plan", "region", "churn"]
    assert cells.count() == len(columns) * MONITOR_WINDOWS
    # every cell says what it shows, as the server's drift result has it
    for w in (1, MONITOR_WINDOWS):
        drift = json.loads(
            api(
                platform,
                "modelog.monitoring.v1.Monitoring/GetWindow",
                {"monitor": seeded.monitor, "window": w},
            )["window"]["driftJson"]
        )
        for test in drift["columns"]:
            cell = tab.page.locator(f".heat-cell[data-column='{test['column']}'][data-window='{w}']")
            label = cell.get_attribute("aria-label") or ""
            assert label.startswith(f"{test['column']}, window {w}: {test['stattest']}")
            assert label.endswith("drifted" if test["drifted"] else "no drift")
            assert cell.get_attribute("title") == label
            assert cell.get_attribute("data-drifted") == ("true" if test["drifted"] else "false")
    # tenure moved most in the last window: drifted there, and redder than where it held
    last = tab.page.locator(f".heat-cell[data-column=tenure][data-window='{MONITOR_WINDOWS}']")
    assert last.get_attribute("data-drifted") == "true" and SHIFT[-1] > 1
    assert last.evaluate("e => getComputedStyle(e).backgroundColor") != tab.page.locator(
        ".heat-cell[data-column=age][data-window='1']"
    ).evaluate("e => getComputedStyle(e).backgroundColor")

    # a cell picks its window: its column tests, and the URL keeps it
    tab.page.click(".heat-cell[data-column=spend][data-window='3']")
    tab.page.wait_for_selector("#window-title:text-is('Window 3')")
    assert "w=3" in tab.page.url
    tests = tab.page.locator("table[aria-label='Column tests of window 3'] tbody tr")
    assert tests.count() == len(columns)

    windows = tab.page.locator("table[aria-label=Windows] tbody tr")
    assert windows.count() == MONITOR_WINDOWS  # the open window is empty: not listed
    alerts = tab.page.inner_text("ul.alerts")
    assert "dataset drift in 2 consecutive windows" in alerts and "retraining requested" in alerts
    tab.shot("monitor", tall=True)

    with tab.page.expect_download() as info:
        tab.page.click("[data-testid=report]")
    saved = tmp_path / "report.html"
    info.value.save_as(saved)
    assert info.value.suggested_filename == f"{seeded.monitor}-window-3.html"
    html = saved.read_text()
    assert (
        html.lstrip().lower().startswith("<!doctype html") and seeded.monitor in html and "window 3" in html
    )
    assert tab.csp_violations() == []


def _rows(tab: Tab, column: int) -> list[str]:
    return list(
        tab.page.locator(
            f"table[aria-label=Events] tbody tr:not(.detail) td:nth-child({column})"
        ).all_inner_texts()
    )


def test_the_audit_timeline_spans_every_service_and_filters_by_type_actor_and_entity(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    tab.open("/audit")
    tab.page.wait_for_selector("table[aria-label=Events]")
    assert {"tracking", "registry", "monitoring", "artifacts"} <= set(_rows(tab, 2))
    times = _rows(tab, 3)
    assert times == sorted(times, reverse=True)  # newest first, across the logs
    ok = tab.page.wait_for_selector("[data-testid=verify-ok]")
    assert ok is not None and "every chain verified" in ok.inner_text()
    for service, head in platform.heads().items():
        item = tab.page.locator(f"ul.chains li[data-service='{service}']")
        assert item.get_attribute("data-ok") == "true"
        checked = int(item.inner_text().split("✓")[1].split()[0].replace(",", ""))
        assert 0 < checked <= head or head == 0

    # a type across every service
    tab.page.select_option("select[aria-label='Event type']", "WindowProfiled")
    tab.page.wait_for_function(
        "n => document.querySelectorAll('table[aria-label=Events] tbody tr').length === n",
        arg=MONITOR_WINDOWS,
    )
    assert set(_rows(tab, 4)) == {"WindowProfiled"} and "type=WindowProfiled" in tab.page.url

    # an actor within one service
    tab.open("/audit?service=registry")
    tab.page.wait_for_selector("table[aria-label=Events]")
    tab.page.fill("input[aria-label=Actor]", "system")
    tab.page.click(".audit-filters button[type=submit]")
    tab.page.wait_for_function("() => new URL(location.href).searchParams.get('actor') === 'system'")
    tab.page.wait_for_selector("table[aria-label=Events], .log-card .empty")
    assert set(_rows(tab, 5)) <= {"system"} and set(_rows(tab, 2)) <= {"registry"}

    # an entity: the lineage service's timeline of a model, across the logs that touched it
    tab.open("/audit")
    tab.page.wait_for_selector("table[aria-label=Events]")
    tab.page.fill("input[aria-label=Entity]", "model:churn")
    tab.page.click(".audit-filters button[type=submit]")
    note = tab.page.wait_for_selector("[data-testid=timeline-note]:has-text('touched model:churn')")
    assert note is not None
    types = _rows(tab, 4)
    assert "ModelRegistered" in types and "AliasSet" in types
    # a stream id prefix
    tab.open("/audit?entity=monitor-*")
    tab.page.wait_for_selector("table[aria-label=Events]")
    assert set(_rows(tab, 2)) == {"monitoring"}
    tab.page.locator("table[aria-label=Events] tbody tr").first.click()
    detail = tab.page.wait_for_selector("tr.detail pre")
    assert detail is not None
    tab.shot("audit-timeline")
    assert tab.csp_violations() == []


def test_the_signed_export_downloads_and_verifies_offline(
    tab: Tab, platform: Platform, seeded: Seeded, tmp_path: Path
) -> None:
    tab.sign_in(platform.token)
    tab.open("/audit")
    tab.page.fill(".export-form input[type=text]", seeded.model)
    with tab.page.expect_download() as info:
        tab.page.click("[data-testid=export]")
    bundle = tmp_path / info.value.suggested_filename
    info.value.save_as(bundle)
    assert bundle.name.startswith("modelog-audit-") and bundle.name.endswith(f"-{seeded.model}.jsonl")
    tab.page.wait_for_selector("[data-testid=export-done]")
    verified = json.loads(platform.cli("audit", "verify", str(bundle), "--json"))
    assert verified["ok"] is True and verified["events"] > 0
    assert tab.csp_violations() == []
