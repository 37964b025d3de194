"""The web UI in a real browser (Debian's Chromium) against `modelog up` with real data: sign-in, the
experiments list, the runs table (virtualized, server-side sort, filter with inline errors, state in
the URL), the run page's charts, the models page's approvals by role, and the audit log.

Each test saves a screenshot under the pytest basetemp's ui-shots/ to look at."""

from __future__ import annotations

import re
import urllib.parse

import modelog
from tests.integration.gatewayfix import Platform
from tests.ui.conftest import Tab
from tests.ui.seed import LONG_POINTS, Seeded


def rows(tab: Tab) -> list[str]:
    """The run names of the rows in the DOM, top to bottom."""
    return list(tab.page.locator("[data-testid=runs-table] [role=row] .attr-name a").all_inner_texts())


def url_params(tab: Tab) -> dict[str, str]:
    query = urllib.parse.urlparse(tab.page.url).query
    return dict(urllib.parse.parse_qsl(query))


LOADED = r"^[\d,]+ runs?( loaded, more as you scroll)?$"
"""The table has a page of runs and is not loading: with more pages to scroll to or without (a tall
window may have fetched them all already)."""


def wait_count(tab: Tab, pattern: str) -> None:
    tab.page.wait_for_function(
        "p => new RegExp(p).test(document.querySelector('[data-testid=run-count]')?.textContent ?? '')",
        arg=pattern,
    )


def test_a_token_signs_in_once_as_an_http_only_cookie_and_sign_out_forgets_it(
    tab: Tab, platform: Platform
) -> None:
    response = tab.open("/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"

    tab.page.fill("#token", "mlg_not-a-real-token")
    tab.page.click("button[type=submit]")
    refusal = tab.page.wait_for_selector("#token-error")
    assert refusal is not None and "unknown or revoked token" in refusal.inner_text()
    assert tab.page.query_selector(".notice") is None  # no session had ended
    tab.shot("signin-refused")

    tab.page.fill("#token", platform.token)
    tab.page.click("button[type=submit]")
    who = tab.page.wait_for_selector("[data-testid=whoami]")
    assert who is not None and "admin" in who.inner_text()
    cookies = {c["name"]: c for c in tab.page.context.cookies()}
    assert cookies["modelog_session"]["httpOnly"] and cookies["modelog_session"]["sameSite"] == "Strict"
    readable = tab.page.evaluate("document.cookie")
    assert "modelog_session" not in readable and platform.token not in readable
    assert platform.token not in tab.page.evaluate("JSON.stringify({...localStorage, ...sessionStorage})")
    tab.shot("signed-in")

    tab.page.reload()  # the cookie, not the page, remembers who you are
    tab.page.wait_for_selector("[data-testid=whoami]")
    tab.page.click("text=Sign out")
    tab.page.wait_for_selector("#token")
    tab.page.reload()
    tab.page.wait_for_selector("#token")
    assert "modelog_session" not in {c["name"] for c in tab.page.context.cookies()}
    assert tab.csp_violations() == []


def test_the_experiments_list_is_searchable(tab: Tab, platform: Platform, seeded: Seeded) -> None:
    tab.sign_in(platform.token)
    tab.page.wait_for_selector("table[aria-label=Experiments]")
    names = tab.page.locator("table[aria-label=Experiments] tbody tr td:first-child a").all_inner_texts()
    assert {"churn", "fraud-detection", "sweep"} <= set(names)
    tab.page.fill("input[aria-label='Search experiments']", "fraud")
    tab.page.wait_for_function(
        "() => document.querySelectorAll('table[aria-label=Experiments] tbody tr').length === 1"
    )
    assert url_params(tab)["q"] == "fraud"
    assert re.match(r"1 of \d+ experiments", tab.page.inner_text("[data-testid=experiment-count]"))
    tab.shot("experiments-search")
    tab.page.fill("input[aria-label='Search experiments']", "")
    tab.page.click("text=churn")
    tab.page.wait_for_url(re.compile(rf"/experiments/{seeded.experiment_id}"))
    assert tab.csp_violations() == []


def test_the_runs_table_is_virtualized_pages_on_scroll_and_sorts_on_the_server(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    tab.open(f"/experiments/{seeded.experiment_id}")
    wait_count(tab, r"^100 runs loaded")  # the first page is small, for a fast first paint
    in_dom = len(rows(tab))
    assert 10 < in_dom < 100, f"{in_dom} rows in the DOM: the table is not virtualized"
    assert rows(tab)[0] == "long-history"  # newest first
    tab.shot("runs")

    tab.page.locator("[data-testid=runs-table]").evaluate("el => el.scrollTop = el.scrollHeight")
    wait_count(tab, rf"^{seeded.runs} runs$")  # the next page came as the end neared
    tab.page.locator("[data-testid=runs-table]").evaluate("el => el.scrollTop = el.scrollHeight")
    tab.page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=runs-table] .attr-name a')]"
        ".some(a => a.textContent === 'run-000')"
    )

    tab.page.click("[role=columnheader] button:has-text('acc')")
    tab.page.wait_for_function("() => new URL(location.href).searchParams.get('sort') === 'metrics.acc DESC'")
    client = modelog.connect(platform.addr, platform.token)
    try:
        top = modelog.search_runs("churn", order_by=["metrics.acc DESC"], max_results=3)
        bottom = modelog.search_runs("churn", order_by=["metrics.acc ASC"], max_results=3)
    finally:
        client.close()
    tab.page.wait_for_function(
        "n => document.querySelector('[data-testid=runs-table] .attr-name a')?.textContent === n",
        arg=top[0].name,
    )
    assert rows(tab)[:3] == [r.name for r in top]
    assert tab.page.get_attribute("[role=columnheader][aria-sort]", "aria-sort") == "descending"
    tab.page.click("[role=columnheader] button:has-text('acc')")
    tab.page.wait_for_function(
        "n => document.querySelector('[data-testid=runs-table] .attr-name a')?.textContent === n",
        arg=bottom[0].name,
    )
    assert rows(tab)[:3] == [r.name for r in bottom]
    assert url_params(tab)["sort"] == "metrics.acc ASC"
    tab.shot("runs-sorted")
    assert tab.csp_violations() == []


def test_the_filter_goes_to_the_server_and_its_error_is_shown_inline(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    tab.open(f"/experiments/{seeded.experiment_id}")
    wait_count(tab, LOADED)
    tab.page.fill("#run-filter", "params.layers = '2' and params.optimizer = 'adam'")
    tab.page.press("#run-filter", "Enter")
    wait_count(tab, r"^20 runs$")
    # run i has layers 2 + i % 4 and optimizer i % 3: both hold for i % 12 == 0, 20 of the 240 runs
    assert tab.page.inner_text("[data-testid=run-count]") == "20 runs"
    assert url_params(tab)["filter"] == "params.layers = '2' and params.optimizer = 'adam'"

    tab.page.fill("#run-filter", "metrics.acc >> 1")
    tab.page.press("#run-filter", "Enter")
    error = tab.page.wait_for_selector("[data-testid=filter-error]")
    assert error is not None
    text = error.inner_text()
    assert "expected a value after '>'" in text and "column 14" in text, text
    assert tab.page.get_attribute("#run-filter", "aria-invalid") == "true"
    tab.shot("runs-bad-filter")

    tab.page.fill("#run-filter", "")
    tab.page.press("#run-filter", "Enter")
    wait_count(tab, LOADED)
    assert tab.page.query_selector("[data-testid=filter-error]") is None
    assert tab.csp_violations() == []


def test_a_view_in_the_url_opens_as_it_was_saved(tab: Tab, platform: Platform, seeded: Seeded) -> None:
    tab.sign_in(platform.token)
    view = urllib.parse.urlencode(
        {"filter": "tags.team = 'nlp'", "sort": "params.seed ASC", "cols": "p:seed,m:acc,t:team"}
    )
    tab.open(f"/experiments/{seeded.experiment_id}?{view}")
    wait_count(tab, r"^120 runs$")  # the odd-numbered half
    assert tab.page.input_value("#run-filter") == "tags.team = 'nlp'"
    headers = tab.page.locator("[role=columnheader] .col-name").all_inner_texts()
    assert headers == ["seed", "acc", "team"]
    client = modelog.connect(platform.addr, platform.token)
    try:
        expected = modelog.search_runs("churn", "tags.team = 'nlp'", ["params.seed ASC"], max_results=3)
    finally:
        client.close()
    assert rows(tab)[:3] == [r.name for r in expected]

    tab.page.click("[data-testid=column-picker]")
    tab.page.check(".picker-group.kind-p label:has-text('lr') input")
    tab.page.keyboard.press("Escape")
    tab.page.wait_for_function(
        "() => new URL(location.href).searchParams.get('cols') === 'p:seed,m:acc,t:team,p:lr'"
    )
    assert tab.page.locator("[role=columnheader] .col-name").all_inner_texts() == [
        "seed",
        "acc",
        "team",
        "lr",
    ]
    tab.shot("runs-url-view")

    tab.page.reload()  # the URL alone restores it
    wait_count(tab, r"^120 runs$")
    assert tab.page.locator("[role=columnheader] .col-name").all_inner_texts() == [
        "seed",
        "acc",
        "team",
        "lr",
    ]
    assert tab.page.get_attribute("[role=columnheader][aria-sort]", "aria-sort") == "ascending"
    assert tab.csp_violations() == []


def test_the_run_page_charts_a_long_history_downsampled_by_the_server(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    tab.open(f"/runs/{seeded.long_run}")
    chart = tab.page.wait_for_selector("[data-testid=chart-loss] canvas")
    assert chart is not None
    caption = tab.page.inner_text("[data-testid=chart-loss] figcaption")
    counts = re.search(r"([\d,]+) of ([\d,]+) points", caption)
    assert counts is not None, caption
    shown, total = (int(n.replace(",", "")) for n in counts.groups())
    assert total == LONG_POINTS and 100 < shown < 5000, caption
    assert "customers-2026-10" in tab.page.inner_text(".run-side")
    assert "0.05" in tab.page.inner_text("table[aria-label=Parameters]")
    tab.page.wait_for_timeout(300)  # let uPlot paint before the picture
    tab.shot("run")

    tab.page.click("label:has-text('Log scale') input")
    tab.page.click(".segmented button:has-text('Time')")
    tab.page.wait_for_function(
        "() => { const q = new URL(location.href).searchParams;"
        " return q.get('log') === '1' && q.get('x') === 'time' }"
    )
    tab.page.wait_for_selector("[data-testid=chart-loss] canvas")
    tab.page.reload()
    tab.page.wait_for_selector("[data-testid=chart-loss] canvas")
    assert tab.page.is_checked("label:has-text('Log scale') input")
    assert tab.page.get_attribute(".segmented button:has-text('Time')", "aria-pressed") == "true"
    tab.shot("run-log-time")
    assert tab.csp_violations() == []


def test_approve_is_offered_only_to_whom_the_policy_lets_decide(
    tab: Tab, browser: object, platform: Platform, seeded: Seeded
) -> None:
    viewer = platform.new_token("vera", "viewer")
    member = platform.new_token("bob", "member")

    tab.sign_in(viewer)
    tab.open(f"/models/{seeded.model}")
    request = tab.page.wait_for_selector("[data-testid=request-v1]")
    assert request is not None and "requested by admin" in request.inner_text()
    assert tab.page.query_selector("button:has-text('Approve')") is None
    assert tab.page.query_selector("button:has-text('Reject')") is None
    tab.shot("model-as-viewer")

    tab.page.click("text=Sign out")
    tab.sign_in(platform.token)  # the requester: the policy wants someone else
    tab.open(f"/models/{seeded.model}")
    tab.page.wait_for_selector("[data-testid=request-v1]")
    assert tab.page.query_selector("button:has-text('Approve')") is None
    assert "someone else" in tab.page.inner_text("[data-testid=request-v1]")

    tab.page.click("text=Sign out")
    tab.sign_in(member)
    tab.open(f"/models/{seeded.model}")
    tab.page.wait_for_selector("[data-testid=request-v1] button:has-text('Approve')")
    tab.shot("model-as-member")
    tab.page.fill("[data-testid=request-v1] input", "checked the eval")
    tab.page.click("[data-testid=request-v1] button:has-text('Approve')")
    tab.page.wait_for_selector("text=No open requests.")
    assert "Production" in tab.page.inner_text("[data-testid=version-1]")
    assert "bob" in tab.page.inner_text("section[aria-label=History]")
    tab.shot("model-approved")
    assert tab.csp_violations() == []


def test_the_audit_log_lists_recent_events_and_verifies_the_chain(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    tab.open("/audit?service=registry")
    tab.page.wait_for_selector("table[aria-label=Events]")
    types = tab.page.locator("table[aria-label=Events] tbody .type").all_inner_texts()
    assert "ModelRegistered" in types and "TransitionRequested" in types
    positions = [
        int(p) for p in tab.page.locator("table[aria-label=Events] tbody td:first-child").all_inner_texts()
    ]
    assert positions == sorted(positions, reverse=True)  # newest first

    tab.page.select_option("select[aria-label='Event type']", "AliasSet")
    # a function, not an expression: polling a string would need eval, which the page's CSP forbids
    tab.page.wait_for_function(
        "() => [...document.querySelectorAll('table[aria-label=Events] tbody .type')]"
        ".every(t => t.textContent === 'AliasSet')"
    )
    tab.page.locator("table[aria-label=Events] tbody tr").first.click()
    detail = tab.page.wait_for_selector("tr.detail")
    assert detail is not None and '"alias": "champion"' in detail.inner_text()
    # every chain is verified on opening; the button verifies again (a second round)
    tab.page.wait_for_selector("section[data-round='0'] [data-testid=verify-ok]")
    tab.page.click("text=Verify hash chain")
    ok = tab.page.wait_for_selector("section[data-round='1'] [data-testid=verify-ok]")
    assert ok is not None and "verified" in ok.inner_text()
    tab.shot("audit")
    assert tab.csp_violations() == []
