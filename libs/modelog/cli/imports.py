"""`modelog import mlflow|neptune`: bring another tool's history in, with its original times."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from modelog.cli.common import CliError, emit, grpc_errors


@click.group(name="import")
def import_group() -> None:
    """Import the history of another tool (original times and people kept; safe to run again)."""


class _Progress:
    """One line per phase on a terminal (redrawn twice a second), a line every 10 s otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, s: Any, phase: str) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if phase != "done" and now - self.last < (0.5 if self.tty else 10.0):
            return
        self.last = now
        took = max(now - self.start, 1e-6)
        seen, got = s.seen, s.written
        done_runs = seen.done_runs
        eta = ""
        if phase == "runs" and done_runs and seen.runs > done_runs:
            eta = f", about {(seen.runs - done_runs) * took / done_runs:.0f} s left"
        line = (
            f"{phase:<11} experiments {seen.experiments:,}  runs {done_runs:,}/{seen.runs:,}  "
            f"points {got.points:,} ({got.points / took:,.0f}/s)  files {got.files:,} "
            f"({got.bytes / took / 2**20:,.1f} MiB/s)  models {got.models:,}  versions {got.versions:,}{eta}"
        )
        click.echo(("\r" + line + "\x1b[K") if self.tty else line, err=True, nl=not self.tty)
        if self.tty and phase == "done":
            click.echo("", err=True)


def _run(
    source: Any,
    experiments: tuple[str, ...],
    models: tuple[str, ...],
    workers: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    from modelog._client import Connection
    from modelog.importers.state import State, state_path
    from modelog.importers.writer import Importer
    from modelog.shared.settings import Settings

    if workers < 1 or workers > 64:
        raise click.BadParameter("must be 1 to 64", param_hint="--workers")
    with Connection() as conn:
        state = State(state_path(Settings().home, source.label, conn.url))
        try:
            importer = Importer(
                source,
                conn,
                state,
                experiments=experiments,
                models=models,
                workers=workers,
                dry_run=dry_run,
                report=_Progress(as_json),
            )
            summary = importer.run()
        finally:
            state.close()
    out = summary.to_json()
    seen, got = summary.seen, summary.written
    v = summary.verification
    lines = [
        f"{'would import' if dry_run else 'imported'} from {summary.source} in {summary.seconds:.1f} s",
        f"  experiments {seen.experiments:,} (new {got.experiments:,}), "
        f"runs {seen.runs:,} (new {got.runs:,}, complete before {seen.skipped_runs:,}), "
        f"models {seen.models:,} (new {got.models:,}), "
        f"versions {seen.versions:,} (new {got.versions:,})",
    ]
    if not dry_run:
        lines.append(
            f"  metric points {got.points:,} new of {seen.points:,} read ({out['points_per_second']:,}/s), "
            f"files {got.files:,} new ({got.bytes / 2**20:,.1f} MiB)"
        )
        mh, fd = v["metric_histories"], v["file_digests"]
        lines.append(
            f"  verification: {'OK' if v.get('ok') else 'MISMATCH'} "
            f"(runs {v['runs']['modelog']:,}/{v['runs']['source']:,}, "
            f"metric histories {mh['checked'] - mh['mismatched']}/{mh['checked']} equal, "
            f"file digests {fd['checked'] - fd['mismatched']}/{fd['checked']} equal)"
        )
    for sk in summary.skipped[:20]:
        lines.append(f"  skipped: {sk}")
    for f in summary.failures[:20]:
        lines.append(f"  not imported: {f}")
    if len(summary.failures) > 20:
        lines.append(f"  ... and {len(summary.failures) - 20} more (--json lists them all)")
    emit(out, as_json, "\n".join(lines))
    if summary.failures or (v and not v.get("ok")):
        sys.exit(1)


_COMMON = [
    click.option(
        "--experiments",
        "experiments",
        multiple=True,
        metavar="GLOB",
        help="only experiments whose name matches (repeatable; shell-style * and ?)",
    ),
    click.option(
        "--models",
        "models",
        multiple=True,
        metavar="GLOB",
        help="only registered models whose name matches (repeatable)",
    ),
    click.option(
        "--workers",
        type=int,
        default=4,
        show_default=True,
        help="runs imported at once (requests in flight against the source)",
    ),
    click.option("--dry-run", is_flag=True, help="list what would come, write nothing"),
    click.option("--json", "as_json", is_flag=True, help="a machine-readable summary on stdout"),
]


def _common(fn: Any) -> Any:
    for opt in reversed(_COMMON):
        fn = opt(fn)
    return fn


@import_group.command(name="mlflow")
@click.option(
    "--from",
    "url",
    required=True,
    metavar="URL",
    help="the MLflow tracking server, such as http://mlflow:5000 (MLFLOW_TRACKING_TOKEN, or "
    "MLFLOW_TRACKING_USERNAME/PASSWORD, authenticate to it)",
)
@_common
@grpc_errors
def mlflow_command(
    url: str,
    experiments: tuple[str, ...],
    models: tuple[str, ...],
    workers: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Import an MLflow server's experiments, runs (with full metric histories and artifacts) and
    registered models. Run it again to bring what is new; an interrupted import resumes."""
    from modelog.importers.mlflow import MlflowSource
    from modelog.importers.source import SourceError

    try:
        source = MlflowSource(url)
        source.check()
        _run(source, experiments, models, workers, dry_run, as_json)
    except SourceError as exc:
        raise CliError("UNAVAILABLE", str(exc)) from None


@import_group.command(name="neptune")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_common
@grpc_errors
def neptune_command(
    path: Path,
    experiments: tuple[str, ...],
    models: tuple[str, ...],
    workers: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Import the Parquet files Neptune's exporter wrote under PATH (projects become experiments)."""
    from modelog.importers.neptune import NeptuneSource

    try:
        source = NeptuneSource(path)
    except ValueError as exc:
        raise CliError("INVALID_ARGUMENT", str(exc)) from None
    _run(source, experiments, models, workers, dry_run, as_json)
