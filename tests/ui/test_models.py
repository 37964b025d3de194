"""The models page in the browser: requesting a transition (offered only to who may), the history
timeline with imported entries at their original time and person, the lineage graph, and the "as of"
slider that shows the registry as it stood at a past instant."""

from __future__ import annotations

from tests.integration.gatewayfix import Platform
from tests.ui.conftest import Tab, wait_for_edge
from tests.ui.seed import IMPORTED, Seeded


def test_a_member_requests_a_transition_and_a_viewer_is_not_offered_one(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    viewer = platform.new_token("vic", "viewer")
    member = platform.new_token("mia", "member")
    tab.sign_in(viewer)
    tab.open(f"/models/{seeded.imported_model}")
    tab.page.wait_for_selector("section[aria-label=Versions]")
    assert tab.page.query_selector("[data-testid=request-form]") is None

    tab.page.click("text=Sign out")
    tab.sign_in(member)
    tab.open(f"/models/{seeded.imported_model}")
    form = tab.page.wait_for_selector("[data-testid=request-form]")
    assert form is not None
    tab.page.select_option("#rt-version", "1")
    tab.page.select_option("#rt-stage", "STAGE_STAGING")
    assert "needs no approval" in tab.page.inner_text("[data-testid=policy-hint]")
    tab.page.fill("input[aria-label=Why]", "passes the smoke tests")
    tab.page.click("[data-testid=request-form] button[type=submit]")
    tab.page.wait_for_selector("text=v1 moved to Staging.")
    tab.page.wait_for_function(
        "() => document.querySelector('[data-testid=version-1]')?.textContent.includes('Staging')"
    )
    # newest first: the move, and before it the request with its reason, both by mia
    moved, asked = tab.page.locator("[data-testid=history] li").all_inner_texts()[:2]
    assert "moved" in moved and "mia" in moved, moved
    assert "mia requested Staging" in asked and "passes the smoke tests" in asked, asked

    # Production wants an approval from someone else: the request waits, and says so beforehand
    tab.page.select_option("#rt-version", "1")
    tab.page.select_option("#rt-stage", "STAGE_PRODUCTION")
    assert "needs 1 approval from the member role, not yours" in tab.page.inner_text(
        "[data-testid=policy-hint]"
    )
    tab.page.click("[data-testid=request-form] button[type=submit]")
    request = tab.page.wait_for_selector("[data-testid=request-v1]")
    assert request is not None and "requested by mia" in request.inner_text()
    assert "already has an open request" in tab.page.inner_text("[data-testid=policy-hint]")
    tab.shot("model-requested", tall=True)
    assert tab.csp_violations() == []


def test_imported_history_shows_when_and_by_whom_it_happened_at_the_source(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    tab.open(f"/models/{seeded.imported_model}")
    alias = tab.page.wait_for_selector("[data-testid=history] li[data-type=AliasSet].imported")
    assert alias is not None
    text = alias.inner_text()
    # the source's person and time, not the importer's (admin, now)
    assert "bob@example.com" in text and "2025-01-12 09:00:00" in text, text
    assert f"imported from {IMPORTED['source']}" in text
    # the alias moved here later: a fact of this registry, by its own actor
    native = tab.page.locator("[data-testid=history] li[data-type=AliasSet]:not(.imported)").inner_text()
    assert "admin moved alias 'champion'" in native and "imported" not in native, native
    assert tab.csp_violations() == []


def test_the_lineage_graph_links_runs_artifacts_versions_and_aliases(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    wait_for_edge(platform, f"model:{seeded.imported_model}/2", "alias")
    tab.sign_in(platform.token)
    tab.open(f"/models/{seeded.imported_model}")
    tab.page.wait_for_selector("[data-testid=lineage] .lg-node")
    kinds = tab.page.locator("[data-testid=lineage] .lg-node").evaluate_all(
        "ns => ns.map(n => n.dataset.kind)"
    )
    assert kinds.count("model_version") == 2 and kinds.count("artifact_version") == 2, kinds
    assert {"run", "model_alias", "model_stage"} <= set(kinds), kinds
    texts = tab.page.locator("[data-testid=lineage] .lg-text").all_text_contents()
    assert {"fraud-model:v1", "fraud-model:v2", "fraud v1", "fraud v2", "@champion"} <= set(texts), texts
    relations = tab.page.locator("[data-testid=lineage] .lg-edge").evaluate_all(
        "es => es.map(e => e.dataset.relation)"
    )
    assert {"trained", "packaged", "produced", "alias", "stage"} <= set(relations), relations
    tab.shot("model-lineage", tall=True)
    tab.page.click("[data-testid=lineage] a:has(.lg-text:text-is('fraud-model:v2'))")
    tab.page.wait_for_url("**/artifacts/fraud-model?v=2")
    assert tab.csp_violations() == []


def test_the_as_of_slider_shows_the_registry_as_it_stood(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    tab.open(f"/models/{seeded.imported_model}")
    slider = tab.page.wait_for_selector("[data-testid=asof]")
    assert slider is not None
    assert tab.page.inner_text("[data-testid=asof-label]") == "Now"
    # history oldest first: registered, version 1 (both at the source's 2025-01-10), then the alias
    tab.page.fill("[data-testid=asof]", "2")
    tab.page.wait_for_function(
        "() => new URL(location.href).searchParams.get('asof')?.startsWith('2025-01-12T09:00:00')"
    )
    assert "pointed alias 'champion' at version 1" in tab.page.inner_text("[data-testid=asof-label]")
    tab.page.wait_for_selector("[data-testid=asof-view] [data-testid=asof-v1]")
    assert tab.page.query_selector("[data-testid=asof-v2]") is None  # not made yet then
    assert tab.page.inner_text("[data-testid=asof-aliases]").strip() == "@champion → v1"
    assert tab.page.query_selector("section[aria-label=Versions]") is None
    assert tab.page.locator("[data-testid=history] li.later").count() >= 4  # what came after
    # the lineage graph is drawn again for the instant (it may still show now's for a moment)
    tab.page.wait_for_function(
        "() => { const t = [...document.querySelectorAll('[data-testid=lineage] .lg-text')]"
        ".map(e => e.textContent); return t.includes('fraud v1') && !t.includes('fraud v2'); }"
    )
    tab.shot("model-as-of", tall=True)

    # the keyboard moves it an event at a time
    tab.page.focus("[data-testid=asof]")
    tab.page.keyboard.press("ArrowLeft")
    tab.page.wait_for_function(
        "() => new URL(location.href).searchParams.get('asof')?.startsWith('2025-01-10T09:00:00')"
    )
    tab.page.wait_for_function(
        "() => !document.querySelector('[data-testid=asof-aliases]')?.textContent.includes('@champion')"
    )

    tab.page.reload()  # the instant is in the URL
    tab.page.wait_for_selector("[data-testid=asof-view] [data-testid=asof-v1]")
    tab.page.click("text=Back to now")
    tab.page.wait_for_selector("section[aria-label=Versions] [data-testid=version-2]")
    assert "asof" not in tab.page.url
    assert tab.csp_violations() == []
