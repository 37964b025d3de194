"""The README's screenshots of the web UI, taken in Debian's Chromium against seeded data (by hand;
not part of `make test`):

    .venv/bin/python -m tests.ui.screenshots                 # starts `modelog up`, seeds it (~30 s)
    .venv/bin/python -m tests.ui.screenshots --url http://127.0.0.1:5000 --token mlg_…   # a running one
                                                              # seeded by tests/ui/seed.py

Each page is shot at 1280x800 into docs/screenshots/ and re-encoded by `pngquant` (then `optipng`)
when they are on the PATH, so each stays well under 150 kB; look at every one before committing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.procs import CHROMIUM, CHROMIUM_FLAGS

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}


def _api(url: str, token: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{url}/api/modelog/v1/{method}",
        data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        return dict(json.loads(res.read()))


def _find(url: str, token: str) -> dict[str, str]:
    """The ids the pages need, found through the API in the data seed.py writes."""
    exps = _api(url, token, "modelog.tracking.v1.Tracking/ListExperiments", {})["experiments"]
    by_name = {e["name"]: e["experimentId"] for e in exps}
    churn, sweep = by_name["churn"], by_name["sweep"]
    runs = _api(
        url,
        token,
        "modelog.tracking.v1.Tracking/SearchRuns",
        {"experimentIds": [churn], "filter": "attributes.run_name = 'long-history'", "pageSize": 1},
    )["runs"]
    picked = _api(
        url,
        token,
        "modelog.tracking.v1.Tracking/SearchRuns",
        {"experimentIds": [sweep], "orderBy": ["metrics.acc DESC"], "pageSize": 6},
    )["runs"]
    return {
        "churn": churn,
        "long_run": runs[0]["info"]["runId"],
        "compare": ",".join(r["info"]["runId"] for r in picked),
    }


def _optimise(path: Path) -> None:
    if shutil.which("pngquant"):
        subprocess.run(
            ["pngquant", "--force", "--skip-if-larger", "--quality=70-95", "--ext", ".png", str(path)],
            check=False,
        )
    if shutil.which("optipng"):
        subprocess.run(["optipng", "-quiet", "-o2", str(path)], check=False)


def shoot(url: str, token: str, out: Path = OUT) -> list[Path]:
    from playwright.sync_api import sync_playwright

    ids = _find(url, token)
    runs = f"/experiments/{ids['churn']}"
    cols = "cols=m:acc,m:loss,p:lr,p:layers,p:optimizer,t:team&sort=metrics.acc%20DESC"
    pages: list[tuple[str, str, str]] = [
        (
            "runs-table",
            f"{runs}?{cols}",
            "[data-testid=runs-table] [aria-rowindex] && [data-live=on]",
        ),
        (
            "runs-grouped",
            f"{runs}?group=p:lr&agg=m:acc&open=0.05",
            "[data-testid=groups] tbody tr.group-run && [data-testid=group-note][data-complete=true]",
        ),
        ("run-page", f"/runs/{ids['long_run']}", "[data-testid=chart-loss] canvas"),
        ("compare", f"/compare?runs={ids['compare']}", "[data-testid=compare-root][data-drawn]"),
        ("model", "/models/churn", "[data-testid=lineage]"),
        ("dataset-diff", "/datasets/customers", "[data-testid=dataset-diff]"),
        ("monitoring-heatmap", "/monitors/churn-prod", "[data-testid=heatmap] .heat-cell"),
        ("audit", "/audit", "table[aria-label=Events]"),
    ]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport=VIEWPORT, timezone_id="UTC", device_scale_factor=1)
        page = context.new_page()
        page.goto(url + "/")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=whoami]")
        for name, path, ready in pages:
            page.goto(url + path)
            for mark in ready.split(" && "):
                page.wait_for_selector(mark, timeout=30_000)
            # live pages keep an event stream open, so "network idle" never comes: wait for the
            # fonts and two frames after the page's own ready mark
            page.evaluate(
                "() => document.fonts.ready.then(() => new Promise(r =>"
                " requestAnimationFrame(() => requestAnimationFrame(r))))"
            )
            target = out / f"{name}.png"
            page.screenshot(path=str(target))
            _optimise(target)
            written.append(target)
            print(f"{target} {target.stat().st_size // 1024} kB")
        browser.close()
    return written


@contextmanager
def _seeded_platform() -> Iterator[tuple[str, str]]:
    from tests.integration.gatewayfix import start_platform
    from tests.ui.seed import seed

    with tempfile.TemporaryDirectory(prefix="modelog-shots-") as tmp:
        home = Path(tmp)
        up, p = start_platform(home / "gateway")
        client = home / "client"
        client.mkdir()
        os.environ["MODELOG_HOME"] = str(client)
        try:
            seed(p.addr, p.token, client)
            yield p.http, p.token
        finally:
            up.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running gateway seeded by tests/ui/seed.py (else one is started)")
    ap.add_argument("--token", help="an admin token for --url")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.url:
        shoot(args.url.rstrip("/"), args.token, args.out)
        return
    with _seeded_platform() as (url, token):
        shoot(url, token, args.out)


if __name__ == "__main__":
    main()
