"""The web UI in headless Chromium against a real `modelog up`, and MLflow 3.17's own UI side by side.

Measured (each from navigation start, in the page's own clock):
- the runs table of an experiment of 100k runs: its first rows painted; every row loaded by scrolling,
  then a jump to row 90,000 and the next frame painted;
- the same two at 10k runs, for Modelog and for MLflow's UI (`mlflow server` on the same PostgreSQL,
  seeded with 10k runs through its REST API; its table loads 100 runs per "Load more");
- a run page whose metric has 1M points: the chart drawn (the server downsamples it);
- the compare page of 50 runs x 10 metrics, all charts drawn;
- the initial JavaScript, compressed as the gateway serves it.

Seeding goes through the real services: StartRun calls in parallel, then the metrics as LogMetrics
streams (one columnar batch per run). Not part of `make test`: run it with
`.venv/bin/python -m tests.bench.bench_ui` (BENCH_UI_RUNS to change the 100k). BENCH_UI_PART=charts
measures only the 1M-point chart and the compare page (no 100k seeding, no MLflow) and replaces just
those figures in results/ui.json, under "charts_rerun" with its own time and load average.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import grpc

from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc as tgrpc
from modelog_platform.embedded import free_port
from modelog_services.gateway.ui import DIST
from tests.bench.bench_tracking import mlflow_server
from tests.bench.common import RESULTS, postgres, write_result
from tests.procs import CHROMIUM, CHROMIUM_FLAGS, Up, env_for

RUNS = int(os.environ.get("BENCH_UI_RUNS", "100000"))
SIDE_RUNS = int(os.environ.get("BENCH_UI_SIDE_RUNS", "10000"))
TARGET_ROW = 90_000
SIDE_TARGET_ROW = min(9_000, SIDE_RUNS - 1)
CHART_POINTS = 1_000_000
COMPARE_RUNS, COMPARE_METRICS, COMPARE_STEPS = 50, 10, 100
REPEAT = 5
PART = os.environ.get("BENCH_UI_PART", "")
MLFLOW_LOAD_CAP_S = float(os.environ.get("BENCH_UI_MLFLOW_CAP_S", "300"))
"""MLflow's "Load more" gets slower as its table grows (seconds a click here): give up after this."""
CONCURRENCY = 128
STREAMS = 16

# An observer set before the page's own scripts: the first element matching SELECTOR, then the next
# frame (requestAnimationFrame, then a task after it: the frame was painted). Same probe for both UIs.
PAINT_PROBE = """
(() => {
  const sel = %s;
  const seen = () => {
    if (window.__painted !== undefined || !document.querySelector(sel)) return false;
    window.__painted = null;
    requestAnimationFrame(() => setTimeout(() => { window.__painted = performance.now(); }, 0));
    return true;
  };
  new MutationObserver(() => seen()).observe(document, {childList: true, subtree: true, attributes: true});
})();
"""

# A jump far down a virtualized table, and the frame that shows the row it jumped to.
JUMP = """
async ([scroller, row, offset]) => {
  const el = document.querySelector(scroller);
  el.scrollTop = 0;
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)));
  const t0 = performance.now();
  el.scrollTop = offset;
  await new Promise(resolve => {
    const check = () => document.querySelector(row)
      ? requestAnimationFrame(() => setTimeout(resolve, 0))
      : requestAnimationFrame(check);
    check();
  });
  return performance.now() - t0;
}
"""


# MLflow's grid to its bottom; the last row index it renders.
MLFLOW_BOTTOM = """
() => {
  const v = document.querySelector('.ag-body-viewport');
  v.scrollTop = v.scrollHeight;
  const rows = [...document.querySelectorAll('.ag-center-cols-container .ag-row')];
  return Math.max(-1, ...rows.map(r => Number(r.getAttribute('row-index'))));
}
"""


MLFLOW_LOAD_MORE = """
() => {
  const b = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Load more');
  if (b) b.click();
  return !!b;
}
"""


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "median_ms": _median(values),
        "min_ms": round(min(values), 1),
        "runs_ms": [round(v, 1) for v in values],
    }


# ---------------------------------------------------------------- seeding Modelog


async def _seed_modelog(addr: str, token: str) -> dict[str, Any]:
    md = [("authorization", f"Bearer {token}")]
    out: dict[str, Any] = {}
    async with grpc.aio.insecure_channel(addr, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        stub = tgrpc.TrackingStub(ch)

        async def experiment(name: str, n: int) -> str:
            exp = await stub.CreateExperiment(tpb.CreateExperimentRequest(name=name), metadata=md)
            eid = exp.experiment.experiment_id
            ids = [uuid.uuid4().hex for _ in range(n)]
            sem = asyncio.Semaphore(CONCURRENCY)

            async def start(i: int) -> None:
                params = {
                    "lr": str((0.1, 0.03, 0.01, 0.003, 0.001)[i % 5]),
                    "layers": str(2 + i % 4),
                    "optimizer": ("adam", "sgd", "adamw")[i % 3],
                }
                async with sem:
                    req = tpb.StartRunRequest(
                        experiment_id=eid, run_id=ids[i], name=f"run-{i:06d}", params=params
                    )
                    await stub.StartRun(req, metadata=md)

            await asyncio.gather(*(start(i) for i in range(n)))

            def batches(k: int) -> Iterator[tpb.MetricBatch]:
                for i in range(k, n, STREAMS):
                    acc = (i * 7919 % 1000) / 1000
                    yield tpb.MetricBatch(
                        run_id=ids[i],
                        keys=["acc", "loss"],
                        values=[acc, 1 - acc],
                        idempotency_key=f"s-{ids[i]}",
                    )

            await asyncio.gather(*(stub.LogMetrics(batches(k), metadata=md) for k in range(STREAMS)))
            return eid

        if PART != "charts":
            t = time.perf_counter()
            out["experiment"] = await experiment(f"ui-{RUNS}", RUNS)
            out["seed_runs_s"] = round(time.perf_counter() - t, 1)
            out["side_experiment"] = await experiment(f"ui-{SIDE_RUNS}", SIDE_RUNS)

        # one run, one metric of 1M points, in batches of 10k
        exp = await stub.CreateExperiment(tpb.CreateExperimentRequest(name="ui-chart"), metadata=md)
        run = await stub.StartRun(
            tpb.StartRunRequest(experiment_id=exp.experiment.experiment_id, name="million"), metadata=md
        )
        rid = run.run.info.run_id
        t0 = int(time.time() * 1000)

        def points() -> Iterator[tpb.MetricBatch]:
            for b in range(CHART_POINTS // 10_000):
                steps = range(b * 10_000, (b + 1) * 10_000)
                yield tpb.MetricBatch(
                    run_id=rid,
                    keys=["loss"] * 10_000,
                    values=[1 / (1 + s / 1000) + (5.0 if s == 654_321 else 0.0) for s in steps],
                    steps=list(steps),
                    timestamps_ms=[t0 + s for s in steps],
                    idempotency_key=f"m-{rid}-{b}",
                )

        await stub.LogMetrics(points(), metadata=md)
        out["chart_run"] = rid

        # a sweep to compare: 50 runs x 10 metrics x 100 steps
        exp = await stub.CreateExperiment(tpb.CreateExperimentRequest(name="ui-compare"), metadata=md)
        compare = []
        for i in range(COMPARE_RUNS):
            params = {"lr": str((0.1, 0.03, 0.01, 0.003, 0.001)[i % 5]), "layers": str(2 + i % 4)}
            r = await stub.StartRun(
                tpb.StartRunRequest(
                    experiment_id=exp.experiment.experiment_id, name=f"c{i:02d}", params=params
                ),
                metadata=md,
            )
            keys, values, steps = [], [], []
            for m in range(COMPARE_METRICS):
                for s in range(COMPARE_STEPS):
                    keys.append(f"m{m}")
                    values.append((1 + i % 7) * (1 - 2.718 ** (-(s + 1) / (10 + m))))
                    steps.append(s)
            await stub.LogMetricsBatch(
                tpb.MetricBatch(run_id=r.run.info.run_id, keys=keys, values=values, steps=steps), metadata=md
            )
            compare.append(r.run.info.run_id)
        out["compare_runs"] = compare
    return out


# ---------------------------------------------------------------- seeding MLflow (its REST API)


def _mlflow_post(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{base}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as res:
        return dict(json.loads(res.read() or b"{}"))


def _seed_mlflow(base: str, n: int) -> tuple[str, float]:
    eid = str(_mlflow_post(base, "experiments/create", {"name": f"ui-{n}"})["experiment_id"])
    now = int(time.time() * 1000)

    def one(i: int) -> None:
        run = _mlflow_post(
            base, "runs/create", {"experiment_id": eid, "run_name": f"run-{i:06d}", "start_time": now + i}
        )
        rid = run["run"]["info"]["run_id"]
        acc = (i * 7919 % 1000) / 1000
        _mlflow_post(
            base,
            "runs/log-batch",
            {
                "run_id": rid,
                "metrics": [
                    {"key": "acc", "value": acc, "timestamp": now, "step": 0},
                    {"key": "loss", "value": 1 - acc, "timestamp": now, "step": 0},
                ],
                "params": [
                    {"key": "lr", "value": str((0.1, 0.03, 0.01, 0.003, 0.001)[i % 5])},
                    {"key": "layers", "value": str(2 + i % 4)},
                    {"key": "optimizer", "value": ("adam", "sgd", "adamw")[i % 3]},
                ],
            },
        )

    t = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(n)))
    return eid, round(time.perf_counter() - t, 1)


# ---------------------------------------------------------------- the browser


def _first_paint(context: Any, url: str, selector: str, timeout_ms: int = 60_000) -> float:
    page = context.new_page()
    try:
        page.add_init_script(PAINT_PROBE % json.dumps(selector))
        page.goto(url)
        page.wait_for_function("() => typeof window.__painted === 'number'", timeout=timeout_ms)
        return float(page.evaluate("window.__painted"))
    finally:
        page.close()


def _modelog_table(context: Any, base: str, eid: str, target: int) -> dict[str, Any]:
    url = f"{base}/experiments/{eid}"
    first = [_first_paint(context, url, "[data-testid=runs-table] [aria-rowindex]") for _ in range(REPEAT)]
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_selector("[data-testid=runs-table] [aria-rowindex]")
        first_page = int(page.inner_text("[data-testid=run-count]").split()[0].replace(",", ""))
        t = time.perf_counter()
        # scrolling near the end asks for the next page (1,000 runs): until the target row is loaded
        page.wait_for_function(
            """target => {
              const g = document.querySelector('[data-testid=runs-table]');
              const text = document.querySelector('[data-testid=run-count]')?.textContent ?? '';
              const n = parseInt(text.replace(/,/g, ''), 10) || 0;
              g.scrollTop = g.scrollHeight;
              return n > target;
            }""",
            arg=target,
            polling=100,
            timeout=600_000,
        )
        load_s = time.perf_counter() - t
        loaded = page.inner_text("[data-testid=run-count]")
        jumps = [
            float(
                page.evaluate(
                    JUMP,
                    [
                        "[data-testid=runs-table]",
                        f"[data-testid=runs-table] [aria-rowindex='{target + 2}']",
                        32 + target * 30,
                    ],
                )
            )
            for _ in range(REPEAT)
        ]
    finally:
        page.close()
    return {
        "first_rows": _summary(first),
        "rows_in_first_page": first_page,
        "load_to_target_row_s": round(load_s, 1),
        "loaded": loaded,
        "jump_to_row": target,
        "jump_and_paint": _summary(jumps),
    }


def _mlflow_table(context: Any, base: str, eid: str, target: int) -> dict[str, Any]:
    url = f"{base}/#/experiments/{eid}/runs"
    row = ".ag-center-cols-container .ag-row"
    first = [_first_paint(context, url, row) for _ in range(REPEAT)]
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_selector(row)
        shown = page.locator(row).count()
        t = time.perf_counter()
        clicks = 0
        last, progressed, clicked = -1, t, 0.0
        # MLflow pages by "Load more" (100 runs a click): click until the target row is loaded. The
        # button is a row of the grid that re-renders (and is absent while a page loads): clicked
        # from the page, again only when the table has not grown for a while.
        while True:
            top = int(page.evaluate(MLFLOW_BOTTOM))
            now = time.perf_counter()
            if top >= target or now - t > MLFLOW_LOAD_CAP_S or now - progressed > 60:
                break
            if top != last:
                last, progressed = top, now
            elif now - clicked > 1.0 and page.evaluate(MLFLOW_LOAD_MORE):
                clicks += 1
                clicked = now
            page.wait_for_timeout(100)
        load_s = time.perf_counter() - t
        reached = top
        target = min(target, reached)
        height = float(page.evaluate(f"() => document.querySelector('{row}').getBoundingClientRect().height"))
        jumps = [
            float(
                page.evaluate(
                    JUMP,
                    [
                        ".ag-body-viewport",
                        f".ag-center-cols-container .ag-row[row-index='{target}']",
                        target * height,
                    ],
                )
            )
            for _ in range(REPEAT)
        ]
    finally:
        page.close()
    return {
        "first_rows": _summary(first),
        "rows_in_first_page": shown,
        "load_to_target_row_s": round(load_s, 1),
        "rows_loaded": reached + 1,
        "gave_up_after_s": MLFLOW_LOAD_CAP_S if reached + 1 < SIDE_TARGET_ROW else None,
        "load_more_clicks": clicks,
        "jump_to_row": target,
        "jump_and_paint": _summary(jumps),
    }


HISTORY_CALLS = """performance.getEntriesByType('resource')
  .filter(e => /[/]GetMetricHistor(y|ies)$/.test(e.name)).length"""
"""The compare page's history requests (one GetMetricHistories for 50 x 10 since it exists)."""


def _modelog_chart_and_compare(context: Any, base: str, seeded: dict[str, Any]) -> dict[str, Any]:
    chart = [
        _first_paint(
            context,
            f"{base}/runs/{seeded['chart_run']}",
            f"[data-testid=chart-loss][data-points='{CHART_POINTS}'] canvas",
        )
        for _ in range(REPEAT)
    ]
    compare = []
    calls = 0
    for _ in range(REPEAT):
        page = context.new_page()
        try:
            page.add_init_script("performance.setResourceTimingBufferSize(5000)")
            page.goto(f"{base}/compare?runs=" + ",".join(seeded["compare_runs"]))
            page.wait_for_selector("[data-testid=compare-root][data-drawn]", timeout=120_000)
            compare.append(float(page.evaluate("performance.getEntriesByName('compare-drawn')[0].startTime")))
            calls = int(page.evaluate(HISTORY_CALLS))
        finally:
            page.close()
    return {
        "chart_1m_points": {"points": CHART_POINTS, **_summary(chart)},
        "compare": {
            "runs": COMPARE_RUNS,
            "metrics": COMPARE_METRICS,
            "history_calls": calls,
            **_summary(compare),
        },
    }


def _signed_in(browser: Any, base: str, token: str) -> Any:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(base + "/")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=whoami]")
    page.close()
    return context


def initial_js() -> dict[str, Any]:
    """What the first page load fetches, compressed as the gateway serves it (gzip -9)."""
    html = (DIST / "index.html").read_text()
    scripts = re.findall(r'<script[^>]+src="/([^"]+\.js)"', html) + re.findall(
        r'<link[^>]+rel="modulepreload"[^>]+href="/([^"]+\.js)"', html
    )
    styles = re.findall(r'<link[^>]+rel="stylesheet"[^>]+href="/([^"]+\.css)"', html)

    def gz(rel: str) -> int:
        return len(gzip.compress((DIST / rel).read_bytes(), 9, mtime=0))

    lazy = [p.name for p in (DIST / "assets").glob("*.js") if f"assets/{p.name}" not in scripts]
    return {
        "initial_js_gzip_kb": round(sum(gz(s) for s in scripts) / 1024, 1),
        "initial_css_gzip_kb": round(sum(gz(s) for s in styles) / 1024, 1),
        "lazy_chunks_gzip_kb": {name: round(gz(f"assets/{name}") / 1024, 1) for name in sorted(lazy)},
    }


def charts_only() -> dict[str, Any]:
    """BENCH_UI_PART=charts: the chart and compare figures alone, merged into the last full result."""
    from playwright.sync_api import sync_playwright

    start = [round(v, 1) for v in os.getloadavg()]
    with postgres() as dsn, tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        home = Path(tmp) / "server"
        addr, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        up = Up(env_for(home, addr, MODELOG_PG_DSN=dsn, MODELOG_HTTP_ADDR=http))
        try:
            up.wait_for("modelog ready on", 90)
            token = (home / "admin-token").read_text().strip()
            seeded = asyncio.run(_seed_modelog(addr, token))
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                figures = _modelog_chart_and_compare(
                    _signed_in(browser, f"http://{http}", token), f"http://{http}", seeded
                )
                browser.close()
        finally:
            up.stop()
    path = RESULTS / "ui.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"modelog": {}, "goals": {}}
    full_run = result.pop("when", None)
    result.pop("benchmark", None)
    result.pop("machine", None)
    result.setdefault("full_run_when", full_run)
    before = {k: result["modelog"].get(k, {}).get("median_ms") for k in ("chart_1m_points", "compare")}
    result["modelog"].update(figures)
    result["goals"]["chart_1m_under_500_ms"] = figures["chart_1m_points"]["median_ms"] < 500
    result["goals"]["compare_50x10_under_1_s"] = figures["compare"]["median_ms"] < 1000
    result["charts_rerun"] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "figures": ["modelog.chart_1m_points", "modelog.compare"],
        "load_average_at_start": start,
        "load_average_at_end": [round(v, 1) for v in os.getloadavg()],
        "median_ms_before": before,
        "note": "only these figures were measured again; the others are from the full run above",
    }
    print(json.dumps(figures, indent=2))
    print(f"results written to {write_result('ui', result)}")
    return result


def main() -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    if PART == "charts":
        return charts_only()

    if not (DIST / "index.html").is_file():
        raise SystemExit(f"the web UI is not built ({DIST}): make ui")
    result: dict[str, Any] = {"runs": RUNS, "side_by_side_runs": SIDE_RUNS, **initial_js()}
    # the box is shared (other jobs run beside): say how busy it was, the figures move with it
    result["load_average_at_start"] = [round(v, 1) for v in os.getloadavg()]
    with postgres() as dsn, tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:

        async def create_db() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("DROP DATABASE IF EXISTS mlflow_ui WITH (FORCE)")
                await conn.execute("CREATE DATABASE mlflow_ui")
            finally:
                await conn.close()

        asyncio.run(create_db())
        home = Path(tmp) / "server"
        addr = f"127.0.0.1:{free_port()}"
        http = f"127.0.0.1:{free_port()}"
        up = Up(env_for(home, addr, MODELOG_PG_DSN=dsn, MODELOG_HTTP_ADDR=http))
        try:
            up.wait_for("modelog ready on", 90)
            token = (home / "admin-token").read_text().strip()
            print(f"seeding Modelog: {RUNS:,} + {SIDE_RUNS:,} runs, a 1M-point metric, a 50-run sweep")
            seeded = asyncio.run(_seed_modelog(addr, token))
            print(f"  {RUNS:,} runs in {seeded['seed_runs_s']} s")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                context = _signed_in(browser, f"http://{http}", token)
                base = f"http://{http}"
                print("measuring Modelog")
                ours = {
                    f"table_{RUNS}": _modelog_table(
                        context, base, seeded["experiment"], min(TARGET_ROW, RUNS - 1)
                    ),
                    f"table_{SIDE_RUNS}": _modelog_table(
                        context, base, seeded["side_experiment"], SIDE_TARGET_ROW
                    ),
                    **_modelog_chart_and_compare(context, base, seeded),
                    "seed_runs_s": seeded["seed_runs_s"],
                }
                browser.close()
        finally:
            up.stop()
        result["modelog"] = ours
        print(json.dumps(ours, indent=2))
        with mlflow_server(dsn, "mlflow_ui") as served:
            if served is None:
                result["mlflow"] = None
            else:
                print(f"seeding MLflow: {SIDE_RUNS:,} runs through its REST API")
                eid, seconds = _seed_mlflow(served[0], SIDE_RUNS)
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                    context = browser.new_context(viewport={"width": 1440, "height": 900})
                    print("measuring MLflow's UI")
                    result["mlflow"] = {
                        "version": "3.17",
                        f"table_{SIDE_RUNS}": _mlflow_table(context, served[0], eid, SIDE_TARGET_ROW),
                        "seed_runs_s": seconds,
                    }
                    browser.close()
    side = f"table_{SIDE_RUNS}"
    if result.get("mlflow"):
        result["side_by_side"] = {
            "first_rows_ms": {
                "modelog": ours[side]["first_rows"]["median_ms"],
                "mlflow": result["mlflow"][side]["first_rows"]["median_ms"],
            },
            "rows_in_first_page": {
                "modelog": ours[side]["rows_in_first_page"],
                "mlflow": result["mlflow"][side]["rows_in_first_page"],
            },
            f"load_to_row_{SIDE_TARGET_ROW}": {
                "modelog_s": ours[side]["load_to_target_row_s"],
                "mlflow_s": result["mlflow"][side]["load_to_target_row_s"],
                "mlflow_rows_loaded": result["mlflow"][side]["rows_loaded"],
            },
            "jump_and_paint_ms": {
                "to_row": {
                    "modelog": ours[side]["jump_to_row"],
                    "mlflow": result["mlflow"][side]["jump_to_row"],
                },
                "modelog": ours[side]["jump_and_paint"]["median_ms"],
                "mlflow": result["mlflow"][side]["jump_and_paint"]["median_ms"],
            },
        }
    result["load_average_at_end"] = [round(v, 1) for v in os.getloadavg()]
    result["goals"] = {
        "first_rows_100k_under_500_ms": ours[f"table_{RUNS}"]["first_rows"]["median_ms"] < 500,
        "jump_to_90k_under_100_ms": ours[f"table_{RUNS}"]["jump_and_paint"]["median_ms"] < 100,
        "chart_1m_under_500_ms": ours["chart_1m_points"]["median_ms"] < 500,
        "compare_50x10_under_1_s": ours["compare"]["median_ms"] < 1000,
        "initial_js_under_300_kb": result["initial_js_gzip_kb"] < 300,
    }
    print(json.dumps(result, indent=2))
    path = write_result("ui", result)
    print(f"results written to {path}")
    return result


if __name__ == "__main__":
    main()
