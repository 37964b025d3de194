"""The browser tests' fixtures: a real `modelog up` with its HTTP surface, seeded through the SDK, and
Debian's Chromium driven by Playwright (never a downloaded browser: `playwright install` is not run)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelog_services.gateway.ui import DIST
from tests.integration.gatewayfix import Platform, platform
from tests.procs import CHROMIUM, CHROMIUM_FLAGS
from tests.ui.seed import Seeded, seed

__all__ = ["platform"]

FLAGS = CHROMIUM_FLAGS
SHOTS = Path(__file__).resolve().parents[2] / ".pytest-tmp" / "ui-shots"


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


@pytest.fixture(scope="module")
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

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))

    def open(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def sign_in(self, token: str) -> None:
        self.open("/")
        self.page.fill("#token", token)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("[data-testid=whoami]")

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def csp_violations(self) -> list[str]:
        return [p for p in self.problems if "Content Security Policy" in p or "uncaught" in p]


@pytest.fixture
def tab(browser: Any, platform: Platform, seeded: Seeded) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    t = Tab(context.new_page(), platform.http)
    yield t
    context.close()
