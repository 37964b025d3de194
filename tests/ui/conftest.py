"""The browser tests' fixtures: a real `modelog up` with its HTTP surface, seeded through the SDK, and
Debian's Chromium driven by Playwright (never a downloaded browser: `playwright install` is not run)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelog_services.gateway.ui import DIST
from tests.integration.gatewayfix import Platform, start_platform
from tests.procs import CHROMIUM, CHROMIUM_FLAGS
from tests.ui.seed import Seeded, seed

FLAGS = CHROMIUM_FLAGS


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One `modelog up` for every browser test module: seeding it is the costly part."""
    up, p = start_platform(tmp_path_factory.mktemp("gateway-home"))
    yield p
    up.stop()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (under the pytest basetemp, never committed): look at them."""
    path = tmp_path_factory.getbasetemp() / "ui-shots"
    path.mkdir(exist_ok=True)
    return path


def _why_no_browser() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: `apt-get install chromium` (make test tries this)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: make install"
    if not (DIST / "index.html").is_file():
        return f"the web UI is not built ({DIST} has no index.html): make ui (needs Node.js 20)"
    return None


def api(platform: Platform, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """One call of the JSON API as the admin (what the page would see); {} when it is refused."""
    req = urllib.request.Request(
        f"{platform.http}/api/modelog/v1/{method}",
        data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {platform.token}", "content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return dict(json.loads(res.read()))
    except urllib.error.HTTPError:
        return {}


def wait_for_edge(platform: Platform, entity: str, relation: str, timeout: float = 30) -> None:
    """The lineage graph is the audit service's view fed by the bus: it trails the logs a little, so a
    test that shows it waits until the edge it needs is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        graph = api(
            platform,
            "modelog.audit.v1.Lineage/GetLineage",
            {"entity": entity, "direction": "DIRECTION_BOTH", "depth": 4},
        )
        if any(e.get("relation") == relation for e in graph.get("edges", [])):
            return
        time.sleep(0.2)
    raise AssertionError(f"no {relation!r} edge around {entity} within {timeout}s")


def json_api_answers(http: str, token: str) -> bool:
    req = urllib.request.Request(
        f"{http}/api/modelog/v1/modelog.identity.v1.Identity/WhoAmI",
        data=b"{}",
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return bool(json.loads(res.read()).get("actor"))
    except (urllib.error.URLError, ValueError):
        return False


@pytest.fixture(scope="session")
def seeded(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    why = _why_no_browser()
    if why:
        pytest.skip(why)
    if not json_api_answers(platform.http, platform.token):
        pytest.skip("the gateway does not serve the JSON API (/api/modelog/v1/) that the UI uses")
    home = tmp_path_factory.mktemp("ui-client")
    saved = os.environ.get("MODELOG_HOME")
    os.environ["MODELOG_HOME"] = str(home)  # the SDK's spill and journal directories
    try:
        return seed(platform.addr, platform.token, home)
    finally:
        if saved is None:
            os.environ.pop("MODELOG_HOME", None)
        else:
            os.environ["MODELOG_HOME"] = saved


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module: sync Playwright keeps an event loop running while it is open, which the async
    tests (test_serving.py) could not run beside."""
    why = _why_no_browser()
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Tab:
    """One browser context (its own cookies) on the platform, recording what the console said."""

    def __init__(self, page: Any, base: str, shots: Path) -> None:
        self.page = page
        self.base = base
        self.shots = shots
        self.problems: list[str] = []
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))

    def open(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def sign_in(self, token: str) -> None:
        self.open("/")
        self.page.fill("#token", token)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("[data-testid=whoami]")

    def shot(self, name: str, *, tall: bool = False) -> Path:
        """The window; `tall`: the whole page, which scrolls inside the app's main area (so the
        window is made as tall as that content for the picture)."""
        path = self.shots / f"{name}.png"
        if not tall:
            self.page.screenshot(path=str(path))
            return path
        size = self.page.viewport_size
        height = self.page.evaluate(
            "() => { const m = document.querySelector('main.content');"
            " return (m ? m.scrollHeight + m.getBoundingClientRect().top : document.body.scrollHeight) }"
        )
        self.page.set_viewport_size({"width": size["width"], "height": min(int(height) + 8, 6000)})
        self.page.wait_for_timeout(250)  # charts follow their boxes' new size
        self.page.screenshot(path=str(path))
        self.page.set_viewport_size(size)
        return path

    def csp_violations(self) -> list[str]:
        return [p for p in self.problems if "Content Security Policy" in p or "uncaught" in p]


@pytest.fixture
def tab(browser: Any, platform: Platform, seeded: Seeded, shots: Path) -> Iterator[Tab]:
    # UTC: the pages show local times, and the tests compare them with known instants
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    context.set_default_timeout(20_000)
    # the compare page sends hundreds of calls: keep every one in the resource timings
    context.add_init_script("performance.setResourceTimingBufferSize(5000)")
    t = Tab(context.new_page(), platform.http, shots)
    yield t
    context.close()
