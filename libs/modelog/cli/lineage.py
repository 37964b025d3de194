"""`modelog lineage ENTITY` and `modelog timeline ENTITY`: the audit service's graph and timelines."""

from __future__ import annotations

import dataclasses

import click

from modelog.cli.common import emit, grpc_errors, instant, plain, when
from modelog.graph import DIRECTIONS, lineage, timeline


@click.command("lineage")
@click.argument("entity")
@click.option("--direction", type=click.Choice(sorted(DIRECTIONS)), default="both", show_default=True)
@click.option("--depth", type=click.IntRange(0, 50), default=0, help="hops (0: 10)")
@click.option("--as-of", "as_of", default=None, help="an instant in the past (ISO 8601)")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def lineage_command(entity: str, direction: str, depth: int, as_of: str | None, as_json: bool) -> None:
    """What ENTITY came from and what came of it: run:ID, dataset:DIGEST, artifact:NAME:vN,
    model:NAME[/N|@ALIAS|#STAGE], monitor:NAME."""
    g = lineage(entity, direction=direction, depth=depth, as_of=instant(as_of))
    root = g.nodes[g.root]
    lines = [f"{root.label} ({root.kind})" + (f" as of {as_of}" if as_of else "")]
    for src, relation, dst in g.triples():
        lines.append(f"  {src} --{relation}--> {dst}")
    if g.truncated:
        lines.append("  ... (cut at the node limit)")
    data = {
        "root": g.root,
        "nodes": [plain(dataclasses.asdict(n)) for n in g.nodes.values()],
        "edges": [plain(dataclasses.asdict(e)) for e in g.edges],
        "truncated": g.truncated,
    }
    emit(data, as_json, "\n".join(lines))


@click.command("timeline")
@click.argument("entity")
@click.option("--as-of", "as_of", default=None, help="only events recorded up to this instant")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def timeline_command(entity: str, as_of: str | None, as_json: bool) -> None:
    """Every event across the logs that touched ENTITY, oldest first, with who did it."""
    entries = list(timeline(entity, as_of=instant(as_of)))
    lines = [f"{when(e.recorded_at)}  {f'{e.service}#{e.position}':<18} {e.summary}" for e in entries]
    emit([plain(dataclasses.asdict(e)) for e in entries], as_json, "\n".join(lines) or "(no events)")
