"""Monitoring from Python (`modelog.monitors`) and from `modelog monitor ...`, against the in-process
stack: a DataFrame logged in the background lands in windows, labels update performance, the report is
HTML, and the CLI lists, shows and writes the report file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelog
from modelog import errors
from modelog.cli.monitor import monitor as monitor_cli
from tests.integration.monitoring_stack import CATEGORICAL, NUMERICAL, MonitoringStack, frame, mstack

pytestmark = pytest.mark.asyncio(loop_scope="session")
__all__ = ["mstack"]

SCHEMA = {**{n: "numerical" for n in NUMERICAL}, **{c: "categorical" for c in CATEGORICAL}}


@pytest.fixture
def client(
    mstack: MonitoringStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[modelog.Client]:
    monkeypatch.setenv("MODELOG_URL", mstack.url)
    monkeypatch.setenv("MODELOG_TOKEN", mstack.admin)
    monkeypatch.setenv("MODELOG_HOME", str(tmp_path / "client-home"))
    monkeypatch.delenv("MODELOG_MODE", raising=False)
    c = modelog.connect()
    yield c
    c.close()


def cli(*args: str) -> str:
    result = CliRunner().invoke(monitor_cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


async def test_sdk_logs_dataframes_in_the_background_and_reads_windows_alerts_and_reports(
    mstack: MonitoringStack, client: modelog.Client, tmp_path: Path
) -> None:
    def scenario() -> None:
        m = modelog.monitors.create(
            "churn-sdk",
            model="churn@champion",
            reference=mstack.reference,
            reference_path="ref.parquet",
            schema=SCHEMA,
            prediction="churn",
            target="label",
            id_column="id",
            task="classification",
            window_rows=1000,
            metric_rules=["f1 below 0.8"],
        )
        assert m.baseline is not None and m.baseline["rows"] == 2000 and m.model_version == 1
        clean = frame(1000, seed=11).to_pandas()
        for start in range(0, 1000, 100):  # a training-loop-like trickle
            m.log_predictions(clean.iloc[start : start + 100])
        m.log_predictions(frame(1000, seed=12, shift=2.0, first_id=1000))  # an Arrow table
        m.log_predictions(frame(1000, seed=13, shift=2.0, first_id=2000).to_batches()[0])
        m.flush()
        w3 = m.wait_profiled(3)
        assert w3.dataset_drift and not m.wait_profiled(1).dataset_drift
        assert [w.window for w in m.windows()] == [3, 2, 1]
        alerts = m.alerts()
        assert [(a.kind, a.window, a.retrain_requested) for a in alerts] == [("drift", 3, True)]

        ids = list(range(1000))
        wrong = [1 - int(p) for p in frame(1000, seed=11).column("churn").to_pylist()]
        matched = m.log_labels(ids, wrong)
        assert matched == {"rows": 1000, "matched": 1000, "windows": [1]}
        w1 = m.window(1)
        assert w1.labelled_rows == 1000 and w1.performance["accuracy"] == 0.0
        assert {a.kind for a in m.alerts(open_only=True)} == {"drift", "performance"}

        html = m.report()
        assert html.lstrip().lower().startswith("<!doctype html") and "churn-sdk" in html
        assert "window 3" in html
        assert modelog.monitors.get("churn-sdk").windows_closed == 3
        assert "churn-sdk" in [x.name for x in modelog.monitors.list(model="churn")]

        with pytest.raises(errors.NotFound, match="no monitor named 'ghost'"):
            modelog.monitors.get("ghost")
        m.log_predictions(frame(10, seed=14).append_column("typo", frame(10, seed=14).column("n0")))
        with pytest.raises(errors.InvalidArgument, match="'typo' is not in the monitor's schema"):
            m.flush()
        m.close()

    await asyncio.to_thread(scenario)


async def test_cli_lists_shows_windows_alerts_and_writes_the_report(
    mstack: MonitoringStack, client: modelog.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await mstack.create("churn-cli", window_rows=500)
    await mstack.log("churn-cli", frame(1000, seed=21, shift=2.0))
    await mstack.profiled("churn-cli", 2)
    out = tmp_path / "report.html"

    def scenario() -> None:
        assert "churn-cli" in cli("list")
        listed = json.loads(cli("list", "--json"))
        assert any(m["name"] == "churn-cli" and m["windows_closed"] == 2 for m in listed)
        shown = json.loads(cli("show", "churn-cli", "--json"))
        assert shown["model_ref"] == "churn@champion" and shown["baseline"]["rows"] == 2000
        assert "watches churn@champion" in cli("show", "churn-cli")
        windows = json.loads(cli("windows", "churn-cli", "--json"))
        assert [(w["window"], w["dataset_drift"]) for w in windows] == [(2, True), (1, True)]
        assert "YES" in cli("windows", "churn-cli")
        alerts = json.loads(cli("alerts", "churn-cli", "--json"))
        assert [a["kind"] for a in alerts] == ["drift"]
        written = json.loads(cli("report", "churn-cli", "--window", "1", "--out", str(out), "--json"))
        assert written["window"] == 1 and out.read_text().lstrip().lower().startswith("<!doctype html")
        result = CliRunner().invoke(monitor_cli, ["show", "ghost"])
        assert result.exit_code == 1 and "NOT_FOUND" in result.output

    await asyncio.to_thread(scenario)
