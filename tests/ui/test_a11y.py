"""Accessibility in the browser: axe-core (an npm dev dependency of the UI, read from its
node_modules) finds no serious or critical violation on any page; the runs table works from the
keyboard alone (arrows move the focused row, Enter opens it, Space picks it for comparison)."""

from __future__ import annotations

import re

import pytest

from modelog_services.gateway.ui import DIST
from tests.integration.gatewayfix import Platform
from tests.ui.conftest import Tab
from tests.ui.seed import Seeded

AXE = DIST.parent / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(tab: Tab) -> list[str]:
    """Serious and critical violations on the page as it is now. The script is evaluated through the
    DevTools protocol, which the page's CSP (no inline script) does not govern."""
    if not AXE.is_file():
        pytest.skip(f"{AXE} is missing: npm ci in {DIST.parent} (make ui)")
    if not tab.page.evaluate("() => typeof window.axe !== 'undefined'"):
        tab.page.evaluate(AXE.read_text() + "\n;undefined")
    found = tab.page.evaluate(
        """async () => {
          const r = await axe.run(document, {resultTypes: ['violations']});
          return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => `${v.impact} ${v.id}: ${v.help} at ` +
              v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
        }"""
    )
    return [str(v) for v in found]


def pages(seeded: Seeded) -> list[tuple[str, str, str]]:
    """(name, path, what to wait for) for every page."""
    sweep = ",".join(seeded.sweep[:6])
    return [
        ("experiments", "/experiments", "table[aria-label=Experiments]"),
        ("runs", f"/experiments/{seeded.experiment_id}", "[data-testid=runs-table] [aria-rowindex]"),
        ("run", f"/runs/{seeded.long_run}", "[data-testid=chart-loss] canvas"),
        ("failed-run", f"/runs/{seeded.failed_run}?file=predictions.csv", "[data-testid=preview] table"),
        ("compare", f"/compare?runs={sweep}", "[data-testid=compare-root][data-drawn]"),
        ("artifacts", "/artifacts", "table[aria-label=Artifacts]"),
        ("artifact", "/artifacts/customers?file=customers.csv", "[data-testid=preview] table"),
        ("models", "/models", "table[aria-label='Registered models']"),
        ("model", f"/models/{seeded.imported_model}", "[data-testid=lineage], section[aria-label=Lineage] p"),
        (
            "model-as-of",
            f"/models/{seeded.imported_model}?asof=2025-01-12T09:00:00Z",
            "[data-testid=asof-v1]",
        ),
        ("audit", "/audit?service=registry", "table[aria-label=Events]"),
        ("audit-all", "/audit", "[data-testid=verify-ok]"),
        ("audit-entity", "/audit?entity=model:churn", "table[aria-label=Events]"),
        (
            "runs-grouped",
            f"/experiments/{seeded.experiment_id}?group=p:optimizer&agg=m:acc&open=adam",
            "tbody[data-group=adam] tr.group-run",
        ),
        ("datasets", "/datasets", "table[aria-label=Datasets]"),
        ("dataset", "/datasets/customers", "[data-testid=csv-diff]"),
        ("monitors", "/monitors", "table[aria-label=Monitors]"),
        ("monitor", f"/monitors/{seeded.monitor}", "[data-testid=heatmap] .heat-cell"),
    ]


def test_no_page_has_a_serious_accessibility_violation(tab: Tab, platform: Platform, seeded: Seeded) -> None:
    tab.open("/")
    tab.page.wait_for_selector("#token")
    problems = {"sign-in": axe_violations(tab)}
    tab.sign_in(platform.token)
    for name, path, ready in pages(seeded):
        tab.open(path)
        tab.page.wait_for_selector(ready)
        tab.page.wait_for_timeout(150)  # late parts (charts, lineage) settle
        problems[name] = axe_violations(tab)
    bad = {name: found for name, found in problems.items() if found}
    assert not bad, "\n".join(f"{name}:\n  " + "\n  ".join(found) for name, found in bad.items())
    assert tab.csp_violations() == []


def test_the_runs_table_works_from_the_keyboard(tab: Tab, platform: Platform, seeded: Seeded) -> None:
    tab.sign_in(platform.token)
    tab.open(f"/experiments/{seeded.sweep_experiment_id}")
    tab.page.wait_for_selector("[data-testid=runs-table] [aria-rowindex]")
    grid = "[data-testid=runs-table]"
    # one tab stop: from the filter box's buttons, Tab reaches the grid (its rows' links and boxes are
    # not tab stops of their own)
    tab.page.focus("#run-filter")
    for _ in range(10):
        tab.page.keyboard.press("Tab")
        if tab.page.evaluate("() => document.activeElement?.dataset.testid === 'runs-table'"):
            break
    assert tab.page.evaluate("() => document.activeElement?.dataset.testid") == "runs-table"

    def active() -> str:
        """The focused row's run; it waits for that row to be drawn (a virtualized row that scrolled
        into view is rendered a frame later)."""
        tab.page.wait_for_function(
            """sel => { const id = document.querySelector(sel).getAttribute('aria-activedescendant');
              return !id || document.getElementById(id) !== null }""",
            arg=grid,
        )
        return str(
            tab.page.evaluate(
                """sel => { const g = document.querySelector(sel);
                  const id = g.getAttribute('aria-activedescendant');
                  return id ? document.getElementById(id).querySelector('.attr-name a').textContent : '' }""",
                grid,
            )
        )

    assert active() == ""
    tab.page.keyboard.press("ArrowDown")
    assert active() == "sweep-49"  # the first row
    tab.page.keyboard.press("ArrowDown")
    tab.page.keyboard.press("ArrowDown")
    assert active() == "sweep-47"
    tab.page.keyboard.press("ArrowUp")
    assert active() == "sweep-48"
    tab.page.keyboard.press("End")
    tab.page.wait_for_function(f"() => document.querySelector('{grid}').scrollTop > 0")  # scrolled to it
    assert active() == "sweep-00"
    # the row is visible, not under the sticky header or past the bottom
    inside = tab.page.evaluate(
        """sel => { const g = document.querySelector(sel);
          const id = g.getAttribute('aria-activedescendant');
          const row = document.getElementById(id).getBoundingClientRect();
          const box = g.getBoundingClientRect();
          return row.top >= box.top + 30 && row.bottom <= box.bottom }""",
        grid,
    )
    assert inside
    tab.page.keyboard.press("Home")
    assert active() == "sweep-49"
    tab.page.keyboard.press("PageDown")
    assert active() not in ("sweep-49", "sweep-48")

    # Space picks the focused row, Shift+Space every row from the last one picked
    tab.page.keyboard.press("Home")
    tab.page.keyboard.press("Space")
    for _ in range(3):
        tab.page.keyboard.press("ArrowDown")
    tab.page.keyboard.press("Shift+Space")
    picked = tab.page.locator(f"{grid} [role=row][aria-selected=true] .attr-name a").all_inner_texts()
    assert picked == ["sweep-49", "sweep-48", "sweep-47", "sweep-46"]
    tab.page.keyboard.press("Space")  # again: unpicked
    assert "3 picked" in tab.page.inner_text("[data-testid=picked]")
    tab.page.keyboard.press("Escape")  # clears the picks
    assert tab.page.query_selector("[data-testid=picked]") is None
    tab.shot("runs-keyboard")

    tab.page.keyboard.press("Enter")  # opens the focused row's run
    tab.page.wait_for_url(re.compile(rf"/runs/{seeded.sweep[-4]}$"))
    tab.page.wait_for_selector("text=sweep-46")
    assert tab.csp_violations() == []
