"""`modelog monitor ...`: production monitors, their windows, alerts and HTML drift reports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from modelog._client import Connection
from modelog.cli.common import emit, grpc_errors, plain, table, when
from modelog.monitoring import Monitor, Monitors


@contextmanager
def _monitors() -> Iterator[Monitors]:
    with Connection() as conn:
        yield Monitors(conn)


def _policy(m: Monitor) -> str:
    return f"{m.window_rows:,} rows" if m.window_rows else f"{m.window_seconds} s"


@click.group()
def monitor() -> None:
    """Production monitors: drift per window, performance from late labels, alerts, reports."""


@monitor.command("list")
@click.option("--model", default="", help="only monitors of this registered model")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def monitor_list(model: str, as_json: bool) -> None:
    with _monitors() as client:
        found = client.list(model)
    rows = [
        {
            "name": m.name,
            "model": f"{m.model_ref} (v{m.model_version})",
            "window": _policy(m),
            "closed": m.windows_closed,
            "open rows": m.open_window_rows,
            "alerts": m.open_alerts,
        }
        for m in found
    ]
    emit(plain(found), as_json, table(rows, ["name", "model", "window", "closed", "open rows", "alerts"]))


@monitor.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def monitor_show(name: str, as_json: bool) -> None:
    with _monitors() as client:
        m = client.get(name)
    baseline = m.baseline
    lines = [
        f"{m.name}: watches {m.model_ref} (resolved to {m.model}/{m.model_version})"
        + (f" in {m.deployment}" if m.deployment else ""),
        f"columns: {', '.join(f'{c} ({k})' for c, k in m.schema.items())}",
        f"prediction: {m.prediction or '-'}  target: {m.target or '-'}  id: {m.id_column or '-'}  "
        f"task: {m.task or '-'}",
        f"window: {_policy(m)}; open window {m.open_window} holds {m.open_window_rows:,} rows; "
        f"{m.windows_closed} closed",
        "baseline: "
        + (
            f"{baseline['reference'] or 'uploaded rows'} {baseline['path']} ({baseline['rows']:,} rows)"
            if baseline
            else "none"
        ),
        f"open alerts: {m.open_alerts}",
    ]
    emit(plain(m), as_json, "\n".join(lines))


@monitor.command("windows")
@click.argument("name")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def monitor_windows(name: str, limit: int, as_json: bool) -> None:
    with _monitors() as client:
        found = client.get(name).windows(limit)
    rows = [
        {
            "window": w.window,
            "status": w.status,
            "rows": w.rows,
            "drift": ("YES" if w.dataset_drift else "no") if w.status == "profiled" else "-",
            "share": round(w.drift_share, 3),
            "drifted": ",".join(w.drifted_columns),
            "labelled": w.labelled_rows,
            "performance": " ".join(f"{k}={v:.3f}" for k, v in sorted(w.performance.items())),
            "closed": when(w.closed_at),
        }
        for w in found
    ]
    columns = ["window", "status", "rows", "drift", "share", "drifted", "labelled", "performance", "closed"]
    emit(plain(found), as_json, table(rows, columns))


@monitor.command("alerts")
@click.argument("name")
@click.option("--open", "open_only", is_flag=True, help="only alerts not resolved yet")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def monitor_alerts(name: str, open_only: bool, as_json: bool) -> None:
    with _monitors() as client:
        found = client.get(name).alerts(open_only)
    rows = [
        {
            "alert": a.alert_id,
            "kind": a.kind,
            "window": a.window,
            "status": a.status,
            "retrain": a.retrain_requested,
            "message": a.message,
            "raised": when(a.raised_at),
        }
        for a in found
    ]
    emit(
        plain(found),
        as_json,
        table(rows, ["alert", "kind", "window", "status", "retrain", "message", "raised"]),
    )


@monitor.command("report")
@click.argument("name")
@click.option("--window", "window", type=int, default=0, help="window number (default: the newest profiled)")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"), show_default=True
)
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def monitor_report(name: str, window: int, out: Path, as_json: bool) -> None:
    """Write a window's HTML drift report (one self-contained file)."""
    with _monitors() as client:
        m = client.get(name)
        w = m.window(window)
        html = m.report(w.window)
    out.write_text(html, encoding="utf-8")
    summary = {"monitor": name, "window": w.window, "out": str(out), "bytes": len(html.encode())}
    emit(summary, as_json, f"wrote {out} (window {w.window} of {name}, {summary['bytes']:,} bytes)")
