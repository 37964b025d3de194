"""The run page in the browser: a failed run's reason, its artifact browser (versions, files and
capped previews of text, JSON, CSV and images), dataset inputs linked to the artifact versions that
hold them, and chart smoothing kept in the URL."""

from __future__ import annotations

from tests.integration.gatewayfix import Platform
from tests.ui.conftest import Tab, wait_for_edge
from tests.ui.seed import CSV_ROWS, FAILURE, Seeded

PREVIEW_CAP = 128 * 1024


def open_file(tab: Tab, path: str, kind: str) -> None:
    tab.page.click(f".file-list button:has(.file-path:text-is('{path}'))")
    tab.page.wait_for_selector(f"[data-testid=preview][data-kind={kind}]")


def test_a_failed_run_shows_why_and_browses_its_files_with_capped_previews(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    wait_for_edge(platform, f"run:{seeded.failed_run}", "content")
    tab.sign_in(platform.token)
    tab.open(f"/runs/{seeded.failed_run}")
    failure = tab.page.wait_for_selector("[data-testid=failure]")
    assert failure is not None and FAILURE in failure.inner_text()
    assert tab.page.inner_text(".run-title .badge") == "Failed"

    # the latest version of the run's own artifact, with its files
    tab.page.wait_for_selector(".file-list")
    files = tab.page.locator(".file-list .file-path").all_inner_texts()
    assert files == ["confusion.png", "logs/train.log", "metrics.json", "predictions.csv", "weights.bin"]

    open_file(tab, "logs/train.log", "text")
    text = tab.page.inner_text(".preview-text")
    assert text.startswith("step 00000 loss=1.000000")
    assert len(text.encode()) <= PREVIEW_CAP  # only the head of a 300 KiB log came
    assert "Showing the first 128 KiB of" in tab.page.inner_text("[data-testid=preview]")

    open_file(tab, "metrics.json", "json")
    assert '"per_class": {\n    "cat": 0.8' in tab.page.inner_text(".preview-text")  # pretty-printed

    open_file(tab, "predictions.csv", "csv")
    table = tab.page.locator("[data-testid=preview] table")
    assert table.locator("thead th").all_inner_texts() == ["id", "label", "score", "note"]
    assert table.locator("tbody tr").count() == 100 < CSV_ROWS
    assert table.locator("tbody tr").first.locator("td").all_inner_texts() == ["0", "dog", "0.000", "a, b"]
    tab.shot("run-artifacts-csv", tall=True)

    open_file(tab, "confusion.png", "image")
    tab.page.wait_for_function(
        "() => document.querySelector('.preview-image')?.naturalWidth === 64"
    )  # a real picture, from a blob: URL the CSP allows
    open_file(tab, "weights.bin", "binary")
    assert "no preview" in tab.page.inner_text("[data-testid=preview]")

    # an older version, in the URL
    tab.page.select_option(".artifact-bar select", "1")
    tab.page.wait_for_function("() => new URL(location.href).searchParams.get('art') === '1'")
    tab.page.wait_for_function("() => document.querySelectorAll('.file-list .file-path').length === 1")
    assert tab.page.inner_text(".file-list").startswith("logs/train.log")

    # the dataset input leads to the dataset version that holds it, and from there to its files
    link = tab.page.locator(".datasets a:has-text('customers:v1')")
    link.click()
    tab.page.wait_for_url("**/datasets/customers?v=1")
    tab.page.wait_for_selector("tr.chosen :text('v1')")
    assert "v1 is the first version" in tab.page.inner_text("section[aria-labelledby=diff-title]")
    tab.page.click("a.btn:has-text('Browse files')")
    tab.page.wait_for_url("**/artifacts/customers?v=1")
    tab.page.wait_for_selector(".file-list .file-path:text-is('customers.csv')")
    open_file(tab, "customers.csv", "csv")
    assert tab.page.locator("[data-testid=preview] thead th").all_inner_texts() == ["id", "churned"]
    assert tab.page.locator("[data-testid=preview] tbody tr").count() == 100
    assert "Showing" not in tab.page.inner_text("[data-testid=preview]")  # all 100 rows: nothing cut
    tab.shot("artifact-dataset")
    assert tab.csp_violations() == []


def test_smoothing_draws_the_average_over_the_raw_curve_and_stays_in_the_url(
    tab: Tab, platform: Platform, seeded: Seeded
) -> None:
    tab.sign_in(platform.token)
    tab.open(f"/runs/{seeded.long_run}")
    tab.page.wait_for_selector("[data-testid=chart-loss] canvas")
    legend = "[data-testid=chart-loss] .u-legend"
    assert "(raw)" not in tab.page.inner_text(legend)
    tab.page.fill("[data-testid=smoothing]", "0.9")
    tab.page.wait_for_function("() => new URL(location.href).searchParams.get('smooth') === '0.90'")
    tab.page.wait_for_function(
        "sel => document.querySelector(sel)?.textContent.includes('loss (raw)')", arg=legend
    )
    tab.page.reload()
    tab.page.wait_for_selector("[data-testid=chart-loss] canvas")
    assert "loss (raw)" in tab.page.inner_text(legend)
    assert tab.page.input_value("[data-testid=smoothing]") == "0.9"
    tab.page.wait_for_timeout(200)
    tab.shot("run-smoothed")
    assert tab.csp_violations() == []
