"""`modelog experiments|runs|metrics|sync`: browse and compare experiments from a terminal."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from typing import Any

import click

from modelog._gen.tracking.v1 import tracking_pb2
from modelog._session import Client
from modelog.cli.common import CliError, emit, grpc_errors, table
from modelog.tracking import STATUS_NAMES, RunData


def _client() -> Client:
    return Client(offline=False)


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


@click.group()
def experiments() -> None:
    """Experiments: list, create, rename, delete, restore."""


@experiments.command("list")
@click.option("--all", "show_all", is_flag=True, help="include deleted experiments")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def experiments_list(show_all: bool, as_json: bool) -> None:
    client = _client()
    view = tracking_pb2.VIEW_TYPE_ALL if show_all else tracking_pb2.VIEW_TYPE_ACTIVE_ONLY
    rows: list[dict[str, Any]] = []
    token = ""
    while True:
        resp = client._online().call(
            "ListExperiments", tracking_pb2.ListExperimentsRequest(view=view, page_size=500, page_token=token)
        )
        rows.extend(
            {
                "id": e.experiment_id,
                "name": e.name,
                "description": e.description,
                "deleted": e.deleted,
                "tags": dict(e.tags),
            }
            for e in resp.experiments
        )
        token = resp.next_page_token
        if not token:
            break
    emit(rows, as_json, table(rows, ["id", "name", "deleted", "description"]))


@experiments.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def experiments_create(name: str, description: str, as_json: bool) -> None:
    resp = (
        _client()
        ._online()
        .call("CreateExperiment", tracking_pb2.CreateExperimentRequest(name=name, description=description))
    )
    e = resp.experiment
    emit({"id": e.experiment_id, "name": e.name}, as_json, f"created experiment {e.name} ({e.experiment_id})")


def _experiment_id(client: Client, name_or_id: str) -> str:
    return client._experiment_id(name_or_id)


@experiments.command("rename")
@click.argument("experiment")
@click.argument("new_name")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def experiments_rename(experiment: str, new_name: str, as_json: bool) -> None:
    client = _client()
    experiment_id = _experiment_id(client, experiment)
    client._online().call(
        "RenameExperiment", tracking_pb2.RenameExperimentRequest(experiment_id=experiment_id, name=new_name)
    )
    emit({"id": experiment_id, "name": new_name}, as_json, f"renamed {experiment} to {new_name}")


@experiments.command("delete")
@click.argument("experiment")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def experiments_delete(experiment: str, as_json: bool) -> None:
    client = _client()
    experiment_id = _experiment_id(client, experiment)
    client._online().call(
        "DeleteExperiment", tracking_pb2.DeleteExperimentRequest(experiment_id=experiment_id)
    )
    emit(
        {"id": experiment_id, "deleted": True},
        as_json,
        f"deleted {experiment} (restore with `modelog experiments restore {experiment_id}`)",
    )


@experiments.command("restore")
@click.argument("experiment_id")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def experiments_restore(experiment_id: str, as_json: bool) -> None:
    _client()._online().call(
        "RestoreExperiment", tracking_pb2.RestoreExperimentRequest(experiment_id=experiment_id)
    )
    emit({"id": experiment_id, "deleted": False}, as_json, f"restored {experiment_id}")


@click.group()
def runs() -> None:
    """Runs: list (search), show, compare."""


def _run_row(r: RunData, metric_keys: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": r.id, "name": r.name, "status": r.status, "start": _when(r.start_time_ms)}
    for k in metric_keys:
        row[k] = r.metrics.get(k)
    return row


@runs.command("list")
@click.option(
    "--experiment", "-e", "experiments_", multiple=True, required=True, help="name or id; repeatable"
)
@click.option(
    "--filter", "-f", "filter_", default="", help="e.g. \"metrics.acc > 0.9 and params.lr = '0.01'\""
)
@click.option("--order-by", "-o", multiple=True, help='e.g. "metrics.acc DESC"; repeatable')
@click.option("--max", "max_results", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def runs_list(
    experiments_: tuple[str, ...], filter_: str, order_by: tuple[str, ...], max_results: int, as_json: bool
) -> None:
    found = _client().search_runs(list(experiments_), filter_, list(order_by), max_results)
    keys = sorted({k for r in found for k in r.metrics})[:6]
    rows = [_run_row(r, keys) for r in found]
    emit([r.__dict__ for r in found], as_json, table(rows, ["id", "name", "status", "start", *keys]))


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def runs_show(run_id: str, as_json: bool) -> None:
    r = _client().get_run(run_id)
    lines = [
        f"run {r.name} ({r.id})",
        f"  experiment {r.experiment_id}  status {r.status}",
        f"  started {_when(r.start_time_ms)}  ended {_when(r.end_time_ms)}",
    ]
    if r.parent_run_id:
        lines.append(f"  parent {r.parent_run_id}")
    lines += ["params:"] + [f"  {k} = {v}" for k, v in sorted(r.params.items())]
    lines += ["metrics (last / min / max):"] + [
        f"  {k} = {s['last']:.6g} / {s['min']:.6g} / {s['max']:.6g}  ({int(s['count'])} points)"
        for k, s in sorted(r.metric_summaries.items())
    ]
    lines += ["tags:"] + [f"  {k} = {v}" for k, v in sorted(r.tags.items())]
    lines += ["datasets:"] + [f"  {d['name']} {d['digest'][:16]} ({d['context']})" for d in r.datasets]
    emit(r.__dict__, as_json, "\n".join(lines))


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def runs_compare(run_ids: tuple[str, ...], as_json: bool) -> None:
    """Params side by side (differences marked with *), and latest/min/max of every metric."""
    resp = _client().compare_runs(list(run_ids))
    names = [i.name or i.run_id[:8] for i in resp.runs]
    rows: list[dict[str, Any]] = []
    for p in resp.params:
        row = {"": ("* " if p.differs else "  ") + f"params.{p.key}"}
        row.update({n: (c.value if c.present else "-") for n, c in zip(names, p.values, strict=True)})
        rows.append(row)
    for m in resp.metrics:
        row = {"": f"  metrics.{m.key}"}
        row.update(
            {
                n: (f"{c.summary.last:.4g} [{c.summary.min:.4g}..{c.summary.max:.4g}]" if c.present else "-")
                for n, c in zip(names, m.values, strict=True)
            }
        )
        rows.append(row)
    data = {
        "runs": [{"id": i.run_id, "name": i.name, "status": STATUS_NAMES.get(i.status)} for i in resp.runs],
        "rows": rows,
    }
    emit(data, as_json, table(rows, ["", *names]))


@click.group()
def metrics() -> None:
    """Metric histories."""


def ascii_plot(series: dict[str, list[tuple[int, float]]], width: int = 72, height: int = 16) -> str:
    """A small line plot in plain characters, one symbol per series."""
    points = [(s, v) for pts in series.values() for s, v in pts if math.isfinite(v)]
    if not points:
        return "(no finite points)"
    smin, smax = min(s for s, _ in points), max(s for s, _ in points)
    vmin, vmax = min(v for _, v in points), max(v for _, v in points)
    grid = [[" "] * width for _ in range(height)]
    symbols = "*+ox#@%&"
    for pts, sym in zip(series.values(), symbols, strict=False):
        for s, v in pts:
            if not math.isfinite(v):
                continue
            x = 0 if smax == smin else round((s - smin) / (smax - smin) * (width - 1))
            y = 0 if vmax == vmin else round((v - vmin) / (vmax - vmin) * (height - 1))
            grid[height - 1 - y][x] = sym
    label_w = max(len(f"{vmax:.4g}"), len(f"{vmin:.4g}"))
    lines = []
    for i, row in enumerate(grid):
        label = f"{vmax:.4g}" if i == 0 else (f"{vmin:.4g}" if i == height - 1 else "")
        lines.append(f"{label:>{label_w}} |{''.join(row)}")
    lines.append(" " * label_w + " +" + "-" * width)
    lines.append(" " * label_w + f"  step {smin} .. {smax}")
    lines.append("  ".join(f"{sym} {key}" for key, sym in zip(series, symbols, strict=False)))
    return "\n".join(lines)


@metrics.command("plot")
@click.argument("run_id")
@click.argument("keys", nargs=-1, required=True)
@click.option("--width", default=72, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def metrics_plot(run_id: str, keys: tuple[str, ...], width: int, as_json: bool) -> None:
    """Plot metric histories in the terminal (long series are downsampled keeping extremes)."""
    client = _client()
    logged = client.get_run(run_id).metric_summaries
    missing = [k for k in keys if k not in logged]
    if missing:
        has = ", ".join(sorted(logged)) or "none"
        names = ", ".join(repr(k) for k in missing)
        raise CliError("NOT_FOUND", f"run {run_id} has no metric {names}; its metrics: {has}")
    series = {k: [(s, v) for s, v, _ in client.metric_history(run_id, k, max_points=width * 4)] for k in keys}
    emit(
        {k: [{"step": s, "value": v} for s, v in pts] for k, pts in series.items()},
        as_json,
        ascii_plot(series, width),
    )


@click.command()
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def sync(as_json: bool) -> None:
    """Upload what offline runs (MODELOG_MODE=offline) journaled, with the same result as online."""
    from modelog._transport import sync as run_sync

    client = _client()
    online = client._online()
    directory = client.home / "offline"
    if not directory.exists():
        emit({"journals": 0, "calls": 0}, as_json, "nothing to sync")
        return
    with click.progressbar(length=0, label="syncing", file=sys.stderr) as bar:
        report = run_sync(directory, online, bar.update)
    emit(
        report.__dict__,
        as_json,
        f"synced {report.calls} calls from {report.journals} journals"
        + (f" ({report.skipped_in_use} still in use, skipped)" if report.skipped_in_use else ""),
    )
