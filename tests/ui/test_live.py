"""Live updates in the browser, from the server's event stream (Audit.Subscribe as Server-Sent Events):
a run started by a training script appears in the open runs table and its metrics and status follow,
and a running run's chart grows as it logs, all without a reload."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import modelog
from tests.integration.gatewayfix import Platform
from tests.ui.conftest import Tab
from tests.ui.seed import Seeded

EXPERIMENT = "live"


@pytest.fixture
def sdk(platform: Platform) -> Iterator[None]:
    client = modelog.connect(platform.addr, platform.token)
    try:
        yield
    finally:
        client.close()


def row_text(tab: Tab, name: str, cell: str) -> str:
    return str(
        tab.page.evaluate(
            """([name, cell]) => {
              const row = [...document.querySelectorAll('[data-testid=runs-table] [role=row]')]
                .find(r => r.querySelector('.attr-name a')?.textContent === name);
              return row ? row.querySelector(cell)?.textContent ?? '' : '';
            }""",
            [name, cell],
        )
    )


def wait_row(tab: Tab, name: str, cell: str, text: str) -> None:
    tab.page.wait_for_function(
        """([name, cell, text]) => {
          const row = [...document.querySelectorAll('[data-testid=runs-table] [role=row]')]
            .find(r => r.querySelector('.attr-name a')?.textContent === name);
          return row?.querySelector(cell)?.textContent === text;
        }""",
        arg=[name, cell, text],
    )


def test_a_run_started_elsewhere_appears_in_the_open_table_and_follows_its_metrics(
    tab: Tab, platform: Platform, seeded: Seeded, sdk: None
) -> None:
    with modelog.start_run(experiment=EXPERIMENT, name="already-there") as first:
        first.log_metrics({"acc": 0.1}, step=0)
    experiment_id = modelog.get_run(first.id).experiment_id

    tab.sign_in(platform.token)
    tab.open(f"/experiments/{experiment_id}")
    tab.page.wait_for_selector("[data-testid=runs-table] .attr-name a")
    tab.page.wait_for_selector("[data-live=on]")  # the stream is open: what happens now shows up
    tab.page.evaluate("window.__stillTheSamePage = true")

    run = modelog.start_run(experiment=EXPERIMENT, name="arrives-live")
    run.log_metrics({"acc": 0.5}, step=0)
    run.flush()
    # newest first: it takes the top row, running, with its metric
    top = "document.querySelector('[data-testid=runs-table] .attr-name a')?.textContent"
    tab.page.wait_for_function(f"() => {top} === 'arrives-live'")
    wait_row(tab, "arrives-live", ".attr-status", "Running")
    wait_row(tab, "arrives-live", ".vt-cell.num", "0.5")
    assert "2 runs" in tab.page.inner_text("[data-testid=run-count]")
    tab.shot("live-run-arrived")

    run.log_metrics({"acc": 0.75}, step=1)  # a running run's metrics follow
    run.flush()
    wait_row(tab, "arrives-live", ".vt-cell.num", "0.75")
    run.finish()
    wait_row(tab, "arrives-live", ".attr-status", "Finished")
    assert row_text(tab, "already-there", ".vt-cell.num") == "0.1"  # the others are left alone
    assert tab.page.evaluate("window.__stillTheSamePage") is True  # never reloaded
    assert tab.csp_violations() == []


def test_a_running_runs_chart_grows_as_it_logs(
    tab: Tab, platform: Platform, seeded: Seeded, sdk: None
) -> None:
    run = modelog.start_run(experiment=EXPERIMENT, name="chart-live")
    try:
        for step in range(10):
            run.log_metrics({"loss": 1 / (step + 1)}, step=step)
        run.flush()
        tab.sign_in(platform.token)
        tab.open(f"/runs/{run.id}")
        tab.page.wait_for_selector("[data-testid=chart-loss][data-points='10'] canvas")
        tab.page.wait_for_selector("[data-live=on]")
        tab.page.evaluate("window.__stillTheSamePage = true")

        for step in range(10, 25):
            run.log_metrics({"loss": 1 / (step + 1), "acc": step / 25}, step=step)
        run.flush()
        tab.page.wait_for_selector("[data-testid=chart-loss][data-points='25'] canvas")
        # a metric the run had not logged when the page opened gets its chart
        tab.page.wait_for_selector("[data-testid=chart-acc][data-points='15'] canvas")
        assert "25 points" in tab.page.inner_text("[data-testid=chart-loss] figcaption")
        tab.page.wait_for_timeout(200)  # the new history painted
        tab.shot("live-run-chart")
    finally:
        run.finish()
    tab.page.wait_for_selector(".run-title .status-finished")
    assert tab.page.evaluate("window.__stillTheSamePage") is True
    assert tab.csp_violations() == []
