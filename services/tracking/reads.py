"""Queries over the tracking views, answered as protobuf messages (experiments, runs, comparisons)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence

import asyncpg

from eventlog import InvalidArgument, NotFound
from modelog._gen.tracking.v1 import tracking_pb2 as pb
from modelog_platform.authz import Visible
from modelog_services.query.filter import Schema, parse_filter
from modelog_services.query.keyset import fingerprint
from modelog_services.query.sql import Columns, compile_filter, fetch_page, sort_keys

from .domain import RunState
from .projections import VIEWS
from .runs import run_not_found
from .search import RUN_COLUMNS, Params, SortKey, page_size

EXPERIMENT_COLUMNS = (
    "experiment_id, name, description, tags::text, created_at_ms, updated_at_ms, deleted, project"
)
MAX_COMPARE = 100
_VIEW_SQL = {"active": "NOT deleted", "deleted": "deleted", "all": "true"}


def experiment_message(r: asyncpg.Record) -> pb.Experiment:
    return pb.Experiment(
        experiment_id=r[0],
        name=r[1],
        description=r[2],
        tags=json.loads(r[3]),
        created_at_ms=r[4],
        updated_at_ms=r[5],
        deleted=r[6],
        project=r[7],
    )


async def get_experiment(
    conn: asyncpg.Connection, *, experiment_id: str | None = None, name: str | None = None
) -> pb.Experiment:
    column, value = ("experiment_id", experiment_id) if experiment_id is not None else ("name", name)
    row = await conn.fetchrow(
        f"SELECT {EXPERIMENT_COLUMNS} FROM {VIEWS.experiments} WHERE {column} = $1", value
    )
    if row is None:
        what = f"id {experiment_id!r}" if experiment_id is not None else f"name {name!r}"
        raise NotFound(f"no experiment with {what}")
    return experiment_message(row)


EXPERIMENTS = Schema(
    what="experiments",
    item="experiment",
    attributes={
        "name": "string",
        "creation_time": "integer",
        "last_update_time": "integer",
        "experiment_id": "string",
    },
)
_EXPERIMENT_FIELDS = {
    "name": ("name", "text"),
    "creation_time": ("created_at_ms", "bigint"),
    "last_update_time": ("updated_at_ms", "bigint"),
    "experiment_id": ("experiment_id", "text"),
}
_EXPERIMENT_COLUMNS = Columns(
    filtered=_EXPERIMENT_FIELDS,
    sorted={**_EXPERIMENT_FIELDS, "name": ('name COLLATE "C"', "text")},
    tags="tags",
)
_EXPERIMENT_ORDER = [SortKey("created_at_ms", "bigint", True), SortKey("experiment_id", "text", False)]


async def list_experiments(
    conn: asyncpg.Connection,
    view: str,
    size: int,
    token: str,
    visible: Visible | None = None,
    filter: str = "",
    order_by: Sequence[str] = (),
) -> tuple[list[pb.Experiment], str]:
    """Newest first unless `order_by` says otherwise, filtered by the shared grammar (query/sql.py),
    keyset-paged like SearchRuns; only what the caller may read (`visible`)."""
    size = page_size(size)
    expr = parse_filter(filter, EXPERIMENTS)
    ties = [SortKey("experiment_id", "text", False)]
    keys = sort_keys(order_by, EXPERIMENTS, _EXPERIMENT_COLUMNS, _EXPERIMENT_ORDER, ties)
    p = Params()
    where = [_VIEW_SQL[view]]
    if visible is not None:
        projects, keys_ = p.add(sorted(visible.projects), "text[]"), p.add(sorted(visible.keys), "text[]")
        where.append(f"(project = ANY({projects}) OR experiment_id = ANY({keys_}))")
    if expr is not None:
        where.append(compile_filter(expr, _EXPERIMENT_COLUMNS, p))
    fp = fingerprint("experiments", view, filter, list(order_by))
    source = f"FROM {VIEWS.experiments}"
    rows, nxt = await fetch_page(conn, EXPERIMENT_COLUMNS, source, where, p, keys, fp, size, token)
    return [experiment_message(r) for r in rows], nxt


# ---------------------------------------------------------------- runs


def status_enum(status: str) -> pb.RunStatus.ValueType:
    return pb.RunStatus.Value(f"RUN_STATUS_{status}")


def run_info(r: asyncpg.Record) -> pb.RunInfo:
    """From a row of search.RUN_COLUMNS."""
    info = pb.RunInfo(
        run_id=r[0],
        experiment_id=r[1],
        name=r[2],
        status=status_enum(r[3]),
        start_time_ms=r[4],
        parent_run_id=r[6] or "",
        source=pb.RunSource(git_commit=r[7] or "", entry_point=r[8] or "", host=r[9] or "", user=r[10] or ""),
        deleted=r[11],
    )
    if r[5] is not None:
        info.end_time_ms = r[5]
    return info


def run_from_state(s: RunState) -> pb.Run:
    """A run as its decider state knows it (no metrics: the state does not keep them)."""
    info = pb.RunInfo(
        run_id=s.run_id,
        experiment_id=s.experiment_id,
        name=s.name,
        status=status_enum(s.status),
        start_time_ms=s.start_time_ms,
        parent_run_id=s.parent_run_id or "",
        source=pb.RunSource(
            git_commit=s.source.git_commit or "",
            entry_point=s.source.entry_point or "",
            host=s.source.host or "",
            user=s.source.user or "",
        ),
        deleted=s.deleted,
    )
    if s.end_time_ms is not None:
        info.end_time_ms = s.end_time_ms
    datasets = [
        pb.DatasetInput(
            name=x.name,
            digest=x.digest,
            source_type=x.source_type,
            source=x.source,
            context=x.context or "",
            dataset_schema=x.dataset_schema or "",
            dataset_profile=x.dataset_profile or "",
            tags=x.tags,
        )
        for x in s.datasets
    ]
    return pb.Run(info=info, params=dict(s.params), tags=dict(s.tags), datasets=datasets)


def _summary(r: asyncpg.Record) -> pb.MetricSummary:
    """From (run_id, key, value, step, timestamp_ms, min_value, max_value, count)."""
    return pb.MetricSummary(
        key=r[1],
        last=r[2],
        last_step=r[3],
        last_timestamp_ms=r[4],
        min=math.nan if r[5] is None else r[5],
        max=math.nan if r[6] is None else r[6],
        count=r[7],
    )


async def runs_with_details(
    conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], *, dataset_documents: bool
) -> list[pb.Run]:
    """Whole runs for rows of RUN_COLUMNS: params, tags, metric summaries and dataset inputs."""
    runs = {r[0]: pb.Run(info=run_info(r)) for r in rows}
    ids = list(runs)
    if not ids:
        return []
    for table, field in ((VIEWS.run_params, "params"), (VIEWS.run_tags, "tags")):
        for r in await conn.fetch(
            f"SELECT run_id, key, value FROM {table} WHERE run_id = ANY($1::text[])", ids
        ):
            getattr(runs[r[0]], field)[r[1]] = r[2]
    for r in await conn.fetch(
        "SELECT run_id, key, value, step, timestamp_ms, min_value, max_value, count "
        f"FROM {VIEWS.run_latest_metrics} WHERE run_id = ANY($1::text[]) ORDER BY run_id, key",
        ids,
    ):
        runs[r[0]].metrics.append(_summary(r))
    documents = "dataset_schema, dataset_profile" if dataset_documents else "NULL, NULL"
    for r in await conn.fetch(
        f"SELECT run_id, name, digest, source_type, source, context, {documents}, tags::text "
        f"FROM {VIEWS.run_datasets} WHERE run_id = ANY($1::text[]) ORDER BY run_id, seq",
        ids,
    ):
        runs[r[0]].datasets.append(
            pb.DatasetInput(
                name=r[1],
                digest=r[2],
                source_type=r[3],
                source=r[4],
                context=r[5] or "",
                dataset_schema=r[6] or "",
                dataset_profile=r[7] or "",
                tags=json.loads(r[8]),
            )
        )
    return list(runs.values())


async def run_rows(conn: asyncpg.Connection, run_ids: Sequence[str]) -> list[asyncpg.Record]:
    """Rows of RUN_COLUMNS in the order asked; NOT_FOUND naming the first unknown id."""
    rows = await conn.fetch(
        f"SELECT {RUN_COLUMNS} FROM {VIEWS.runs} r WHERE r.run_id = ANY($1::text[])", run_ids
    )
    by_id = {r[0]: r for r in rows}
    for run_id in run_ids:
        if run_id not in by_id:
            raise run_not_found(run_id)
    return [by_id[i] for i in run_ids]


_GET_RUN = f"""
SELECT {RUN_COLUMNS}, p.keys, p.vals, t.keys, t.vals,
       m.keys, m.vals, m.steps, m.ts, m.mins, m.maxs, m.counts,
       d.names, d.digests, d.types, d.sources, d.contexts, d.schemas, d.profiles, d.tags
FROM {VIEWS.runs} r
CROSS JOIN LATERAL (SELECT array_agg(key) keys, array_agg(value) vals
                    FROM {VIEWS.run_params} WHERE run_id = r.run_id) p
CROSS JOIN LATERAL (SELECT array_agg(key) keys, array_agg(value) vals
                    FROM {VIEWS.run_tags} WHERE run_id = r.run_id) t
CROSS JOIN LATERAL (SELECT array_agg(key ORDER BY key) keys, array_agg(value ORDER BY key) vals,
                           array_agg(step ORDER BY key) steps, array_agg(timestamp_ms ORDER BY key) ts,
                           array_agg(min_value ORDER BY key) mins, array_agg(max_value ORDER BY key) maxs,
                           array_agg(count ORDER BY key) counts
                    FROM {VIEWS.run_latest_metrics} WHERE run_id = r.run_id) m
CROSS JOIN LATERAL (SELECT array_agg(name ORDER BY seq) names, array_agg(digest ORDER BY seq) digests,
                           array_agg(source_type ORDER BY seq) types, array_agg(source ORDER BY seq) sources,
                           array_agg(context ORDER BY seq) contexts,
                           array_agg(dataset_schema ORDER BY seq) schemas,
                           array_agg(dataset_profile ORDER BY seq) profiles,
                           array_agg(tags::text ORDER BY seq) tags
                    FROM {VIEWS.run_datasets} WHERE run_id = r.run_id) d
WHERE r.run_id = $1
"""


async def get_run(conn: asyncpg.Connection, run_id: str) -> pb.Run:
    """A whole run in one round trip (the read MLflow's runs/get makes for every logged artifact and
    every end_run): what runs_with_details reads in five queries, as arrays of one row."""
    r = await conn.fetchrow(_GET_RUN, run_id)
    if r is None:
        raise run_not_found(run_id)
    run = pb.Run(info=run_info(r))
    if r[12]:
        run.params.update(zip(r[12], r[13], strict=True))
    if r[14]:
        run.tags.update(zip(r[14], r[15], strict=True))
    if r[16]:
        run.metrics.extend(
            pb.MetricSummary(
                key=key,
                last=value,
                last_step=step,
                last_timestamp_ms=ts,
                min=math.nan if low is None else low,
                max=math.nan if high is None else high,
                count=count,
            )
            for key, value, step, ts, low, high, count in zip(*r[16:23], strict=True)
        )
    if r[23]:
        run.datasets.extend(
            pb.DatasetInput(
                name=name,
                digest=digest,
                source_type=source_type,
                source=source,
                context=context or "",
                dataset_schema=schema or "",
                dataset_profile=profile or "",
                tags=json.loads(tags),
            )
            for name, digest, source_type, source, context, schema, profile, tags in zip(
                *r[23:31], strict=True
            )
        )
    return run


def _values(key: str, cells: list[str | None]) -> pb.ValueComparison:
    present = [c for c in cells if c is not None]
    return pb.ValueComparison(
        key=key,
        values=[pb.ValueCell(present=c is not None, value=c or "") for c in cells],
        differs=len(present) != len(cells) or len(set(present)) > 1,
    )


async def compare_runs(conn: asyncpg.Connection, run_ids: Sequence[str]) -> pb.CompareRunsResponse:
    if not 1 <= len(run_ids) <= MAX_COMPARE:
        raise InvalidArgument.field("run_ids", f"compare 1 to {MAX_COMPARE} runs ({len(run_ids)} given)")
    if len(set(run_ids)) != len(run_ids):
        raise InvalidArgument.field("run_ids", "each run may appear once")
    runs = await runs_with_details(conn, await run_rows(conn, run_ids), dataset_documents=False)
    reply = pb.CompareRunsResponse(runs=[r.info for r in runs])
    for field in ("params", "tags"):
        keys = sorted({k for r in runs for k in getattr(r, field)})
        getattr(reply, field).extend(_values(k, [getattr(r, field).get(k) for r in runs]) for k in keys)
    metrics: dict[str, dict[int, pb.MetricSummary]] = defaultdict(dict)
    for i, r in enumerate(runs):
        for m in r.metrics:
            metrics[m.key][i] = m
    for key in sorted(metrics):
        cells = [metrics[key].get(i) for i in range(len(runs))]
        reply.metrics.append(
            pb.MetricComparison(
                key=key, values=[pb.MetricCell(present=c is not None, summary=c) for c in cells]
            )
        )
    return reply
