"""Tracking's read models, written inline in the append transaction so a write is readable at once.

Metric points are stored as columnar chunks, one row per (run, key, event) holding arrays of steps,
values and timestamps, never one row per point (MLflow's bottleneck). MetricsLogged payloads are
unpacked by PostgreSQL itself (json_to_record into float8[]: "NaN" and "Infinity" parse as floats),
so ingest costs no Python work per point. Each run row keeps the stream version it reflects, which
lets the service decide a metric batch from that row and still append with an exact expected version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from eventlog import DomainEvent, RecordedEvent
from eventlog.projection import Projection, Tables
from modelog.shared.hashchain import micros

from .chunks import CHUNK_SUMMARY_COLUMNS, PICK_STORAGE, SUMMARY, summary_sql, summary_upgrade
from .events import (
    DatasetInputLogged,
    ExperimentCreated,
    ExperimentDeleted,
    ExperimentDescribed,
    ExperimentRenamed,
    ExperimentRestored,
    ExperimentTagDeleted,
    ExperimentTagsSet,
    MetricsLogged,
    ParamsLogged,
    RunDeleted,
    RunFinished,
    RunRenamed,
    RunRestored,
    RunStarted,
    TagDeleted,
    TagsSet,
    registry,
)

SCHEMA = "tracking"
EXPERIMENT_PREFIX = "experiment-"
RUN_PREFIX = "run-"
INDEXED_PREFIX = 200
"""Characters of a param or tag value that are indexed (a B-tree entry holds at most ~2.7 kB)."""
VIEWS = Tables(SCHEMA)
"""The live tables, for readers."""


def _types(*classes: type[DomainEvent]) -> frozenset[str]:
    return frozenset(c.type for c in classes)


class ExperimentsView(Projection):
    """One row per experiment (names and claims live in the log; the row mirrors the experiment)."""

    name = "tracking_experiments"
    schema = SCHEMA
    sources = (SCHEMA,)
    tables = ("experiments",)
    handles = _types(
        ExperimentCreated,
        ExperimentRenamed,
        ExperimentDescribed,
        ExperimentTagsSet,
        ExperimentTagDeleted,
        ExperimentDeleted,
        ExperimentRestored,
    )

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.experiments} (
    experiment_id text    PRIMARY KEY,
    name          text    NOT NULL,
    description   text    NOT NULL,
    tags          jsonb   NOT NULL,
    created_at_ms bigint  NOT NULL,
    updated_at_ms bigint  NOT NULL,
    deleted       boolean NOT NULL DEFAULT false,
    project       text    NOT NULL DEFAULT 'default'
);
CREATE INDEX ON {t.experiments} (name);
CREATE INDEX ON {t.experiments} (created_at_ms DESC, experiment_id);
CREATE INDEX ON {t.experiments} (project);
"""

    def upgrade(self, t: Tables) -> str:
        return (
            f"ALTER TABLE {t.experiments} ADD COLUMN IF NOT EXISTS project text NOT NULL DEFAULT 'default';"
        )

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        for ev in events:
            eid = ev.stream_id.removeprefix(EXPERIMENT_PREFIX)
            at = micros(ev.occurred_at) // 1000
            e = ev.decode(registry)
            if isinstance(e, ExperimentCreated):
                await conn.execute(
                    f"INSERT INTO {t.experiments} (experiment_id, name, description, tags, created_at_ms, "
                    "updated_at_ms, project) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)",
                    e.experiment_id,
                    e.name,
                    e.description,
                    json.dumps(e.tags),
                    e.created_at_ms,
                    at,
                    e.project,
                )
                continue
            assignment, value = _experiment_change(e)
            await conn.execute(
                f"UPDATE {t.experiments} SET {assignment}, updated_at_ms = $3 WHERE experiment_id = $1",
                eid,
                value,
                at,
            )


def _experiment_change(e: DomainEvent) -> tuple[str, object]:
    """The SQL assignment an experiment event makes, in terms of $2, and the value of $2."""
    match e:
        case ExperimentRenamed(name=name):
            return "name = $2", name
        case ExperimentDescribed(description=description):
            return "description = $2", description
        case ExperimentTagsSet(tags=tags):
            return "tags = tags || $2::jsonb", json.dumps(tags)
        case ExperimentTagDeleted(key=key):
            return "tags = tags - $2::text", key
        case ExperimentDeleted() | ExperimentRestored():
            return "deleted = $2::boolean", isinstance(e, ExperimentDeleted)
    raise TypeError(f"not an experiment change: {e!r}")


class RunsView(Projection):
    """Runs with their params, tags, datasets, metric summaries and metric chunks."""

    name = "tracking_runs"
    schema = SCHEMA
    sources = (SCHEMA,)
    tables = ("runs", "run_params", "run_tags", "run_latest_metrics", "run_datasets", "metric_chunks")
    handles = _types(
        RunStarted,
        RunRenamed,
        ParamsLogged,
        MetricsLogged,
        TagsSet,
        TagDeleted,
        DatasetInputLogged,
        RunFinished,
        RunDeleted,
        RunRestored,
    )

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.runs} (
    run_id             text    PRIMARY KEY,
    experiment_id      text    NOT NULL,
    name               text    NOT NULL,
    status             text    NOT NULL,
    start_time_ms      bigint  NOT NULL,
    end_time_ms        bigint,
    parent_run_id      text,
    source_git_commit  text,
    source_entry_point text,
    source_host        text,
    source_user        text,
    deleted            boolean NOT NULL DEFAULT false,
    version            bigint  NOT NULL  -- the run stream's version this row reflects
);
CREATE INDEX ON {t.runs} (experiment_id, start_time_ms DESC, run_id);
CREATE INDEX ON {t.runs} (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE TABLE {t.run_params} (
    run_id text NOT NULL,
    key    text NOT NULL,
    value  text NOT NULL,
    PRIMARY KEY (run_id, key)
);
-- Values may be longer than a B-tree entry can hold, so filters look up a prefix (search.py).
CREATE INDEX ON {t.run_params} (key, left(value, {INDEXED_PREFIX}), run_id);
CREATE TABLE {t.run_tags} (
    run_id text NOT NULL,
    key    text NOT NULL,
    value  text NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX ON {t.run_tags} (key, left(value, {INDEXED_PREFIX}), run_id);
CREATE TABLE {t.run_latest_metrics} (
    run_id       text   NOT NULL,
    key          text   NOT NULL,
    value        float8 NOT NULL,
    step         bigint NOT NULL,
    timestamp_ms bigint NOT NULL,
    min_value    float8,           -- NULL when every point so far is NaN
    max_value    float8,
    count        bigint NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX ON {t.run_latest_metrics} (key, value, run_id);  -- covering: filters need no heap
CREATE TABLE {t.run_datasets} (
    run_id          text   NOT NULL,
    seq             bigint NOT NULL,  -- log position: the order they were logged
    name            text   NOT NULL,
    digest          text   NOT NULL,
    source_type     text   NOT NULL,
    source          text   NOT NULL,
    context         text,
    dataset_schema  text,
    dataset_profile text,
    tags            jsonb  NOT NULL DEFAULT '{{}}',  -- the input's tags besides its context
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE {t.metric_chunks} (
    run_id        text     NOT NULL,
    key           text     NOT NULL,
    seq           bigint   NOT NULL,  -- log position of the MetricsLogged event
    steps         bigint[] NOT NULL,
    "values"      float8[] NOT NULL,
    timestamps_ms bigint[] NOT NULL,
    {CHUNK_SUMMARY_COLUMNS},
    PRIMARY KEY (run_id, key, seq)
);
-- Uncompressed: pglz costs more than the disk it saves on float arrays (measured: 2x the ingest time).
ALTER TABLE {t.metric_chunks} ALTER COLUMN steps SET STORAGE EXTERNAL,
    ALTER COLUMN "values" SET STORAGE EXTERNAL, ALTER COLUMN timestamps_ms SET STORAGE EXTERNAL,
    {PICK_STORAGE};
"""

    def upgrade(self, t: Tables) -> str:
        return (
            summary_upgrade(t)
            + f"\nALTER TABLE {t.run_datasets} ADD COLUMN IF NOT EXISTS tags jsonb NOT NULL DEFAULT '{{}}';"
        )

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        metrics: list[RecordedEvent] = []
        for ev in events:
            if ev.type == MetricsLogged.type:
                metrics.append(ev)
                continue
            if metrics:
                await _apply_metrics(conn, metrics, t)
                metrics = []
            await _apply_run_event(conn, ev, t)
        if metrics:
            await _apply_metrics(conn, metrics, t)


async def _apply_run_event(conn: asyncpg.Connection, ev: RecordedEvent, t: Tables) -> None:
    run_id = ev.stream_id.removeprefix(RUN_PREFIX)
    v = ev.stream_version
    e = ev.decode(registry)
    bump = f"UPDATE {t.runs} SET version = $2 WHERE run_id = $1"
    match e:
        case RunStarted():
            s = e.source
            await conn.execute(
                f"INSERT INTO {t.runs} (run_id, experiment_id, name, status, start_time_ms, parent_run_id, "
                "source_git_commit, source_entry_point, source_host, source_user, version) "
                "VALUES ($1, $2, $3, 'RUNNING', $4, $5, $6, $7, $8, $9, $10)",
                e.run_id,
                e.experiment_id,
                e.name,
                e.start_time_ms,
                e.parent_run_id,
                s.git_commit,
                s.entry_point,
                s.host,
                s.user,
                v,
            )
            await _upsert_tags(conn, t, e.run_id, e.tags)
        case RunRenamed(name=name):
            await conn.execute(
                f"UPDATE {t.runs} SET name = $3, version = $2 WHERE run_id = $1", run_id, v, name
            )
        case ParamsLogged(params=params):
            await conn.execute(bump, run_id, v)
            await conn.execute(
                f"INSERT INTO {t.run_params} (run_id, key, value) SELECT $1, k, x "
                "FROM unnest($2::text[], $3::text[]) AS p(k, x)",
                run_id,
                list(params),
                list(params.values()),
            )
        case TagsSet(tags=tags):
            await conn.execute(bump, run_id, v)
            await _upsert_tags(conn, t, run_id, tags)
        case TagDeleted(key=key):
            await conn.execute(bump, run_id, v)
            await conn.execute(f"DELETE FROM {t.run_tags} WHERE run_id = $1 AND key = $2", run_id, key)
        case DatasetInputLogged():
            await conn.execute(bump, run_id, v)
            await conn.execute(
                f"INSERT INTO {t.run_datasets} (run_id, seq, name, digest, source_type, source, context, "
                "dataset_schema, dataset_profile, tags) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                run_id,
                ev.position,
                e.name,
                e.digest,
                e.source_type,
                e.source,
                e.context,
                e.dataset_schema,
                e.dataset_profile,
                json.dumps(e.tags),
            )
        case RunFinished(status=status, end_time_ms=end):
            await conn.execute(
                f"UPDATE {t.runs} SET status = $3, end_time_ms = $4, version = $2 WHERE run_id = $1",
                run_id,
                v,
                status,
                end,
            )
        case RunDeleted() | RunRestored():
            await conn.execute(
                f"UPDATE {t.runs} SET deleted = $3, version = $2 WHERE run_id = $1",
                run_id,
                v,
                isinstance(e, RunDeleted),
            )


async def _upsert_tags(conn: asyncpg.Connection, t: Tables, run_id: str, tags: dict[str, str]) -> None:
    if tags:
        await conn.execute(
            f"INSERT INTO {t.run_tags} (run_id, key, value) SELECT $1, k, x "
            "FROM unnest($2::text[], $3::text[]) AS p(k, x) "
            "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            run_id,
            list(tags),
            list(tags.values()),
        )


def _metrics_sql(t: Tables) -> str:
    # Chunks are cut per (event, key). The service sends each batch grouped by key, so a key's points
    # are one slice of the event's arrays; any other layout is picked out point by point, in order.
    # `last` is the point with the greatest (step, timestamp), ties going to the one logged later;
    # min and max skip NaN (and LEAST/GREATEST skip the NULL of an all-NaN chunk).
    return f"""
WITH e AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[])
                      AS e(run_id, seq, version, payload)
), b AS MATERIALIZED (
    SELECT e.run_id, e.seq, x.keys, x."values", x.steps, x.timestamps_ms
      FROM e, json_to_record(e.payload::json)
                  AS x(keys text[], "values" float8[], steps bigint[], timestamps_ms bigint[])
), g AS MATERIALIZED (
    SELECT b.seq, k.key, min(k.ord) AS lo, max(k.ord) AS hi, count(*) AS n
      FROM b, unnest(b.keys) WITH ORDINALITY AS k(key, ord)
     GROUP BY b.seq, k.key
), c AS MATERIALIZED (
    SELECT b.run_id, g.key, b.seq, b.steps[g.lo:g.hi] AS steps, b."values"[g.lo:g.hi] AS "values",
           b.timestamps_ms[g.lo:g.hi] AS timestamps_ms
      FROM g JOIN b ON b.seq = g.seq
     WHERE g.n = g.hi - g.lo + 1
    UNION ALL
    SELECT b.run_id, g.key, b.seq, p.steps, p."values", p.timestamps_ms
      FROM g JOIN b ON b.seq = g.seq,
           LATERAL (SELECT array_agg(u.step ORDER BY u.ord) AS steps,
                           array_agg(u.value ORDER BY u.ord) AS "values",
                           array_agg(u.ts ORDER BY u.ord) AS timestamps_ms
                      FROM unnest(b.keys, b.steps, b."values", b.timestamps_ms) WITH ORDINALITY
                           AS u(key, step, value, ts, ord)
                     WHERE u.key = g.key) p
     WHERE g.n <> g.hi - g.lo + 1
), chunks AS (
    INSERT INTO {t.metric_chunks} (run_id, key, seq, steps, "values", timestamps_ms, {", ".join(SUMMARY)})
    SELECT c.*, x.* FROM c, LATERAL ({summary_sql("c")}) x
), versions AS (
    UPDATE {t.runs} r SET version = v.version
      FROM (SELECT run_id, max(version) AS version FROM e GROUP BY run_id) v
     WHERE r.run_id = v.run_id
), s AS (
    SELECT c.run_id, c.key, c.seq, a.min_value, a.max_value, a.n, l.step, l.ts, l.value
      FROM c,
           LATERAL (SELECT min(v) FILTER (WHERE v <> 'NaN') AS min_value,
                           max(v) FILTER (WHERE v <> 'NaN') AS max_value, count(*) AS n
                      FROM unnest(c."values") AS v) a,
           LATERAL (SELECT x.step, x.ts, x.value
                      FROM unnest(c.steps, c.timestamps_ms, c."values") WITH ORDINALITY
                           AS x(step, ts, value, ord)
                     ORDER BY x.step DESC, x.ts DESC, x.ord DESC LIMIT 1) l
)
INSERT INTO {t.run_latest_metrics} AS m
       (run_id, key, value, step, timestamp_ms, min_value, max_value, count)
SELECT DISTINCT ON (run_id, key) run_id, key, value, step, ts,
       min(min_value) OVER w, max(max_value) OVER w, (sum(n) OVER w)::bigint
  FROM s
WINDOW w AS (PARTITION BY run_id, key)
 ORDER BY run_id, key, step DESC, ts DESC, seq DESC
ON CONFLICT (run_id, key) DO UPDATE SET
    value = CASE WHEN (excluded.step, excluded.timestamp_ms) >= (m.step, m.timestamp_ms)
                 THEN excluded.value ELSE m.value END,
    timestamp_ms = CASE WHEN (excluded.step, excluded.timestamp_ms) >= (m.step, m.timestamp_ms)
                        THEN excluded.timestamp_ms ELSE m.timestamp_ms END,
    step = GREATEST(m.step, excluded.step),
    min_value = LEAST(m.min_value, excluded.min_value),
    max_value = GREATEST(m.max_value, excluded.max_value),
    count = m.count + excluded.count
"""


async def _apply_metrics(conn: asyncpg.Connection, events: list[RecordedEvent], t: Tables) -> None:
    payloads = [
        ev.payload_json
        if ev.schema_version == MetricsLogged.schema_version
        else ev.decode(registry).payload_json()  # an older version, upcast first
        for ev in events
    ]
    await conn.execute(
        _metrics_sql(t),
        [ev.stream_id.removeprefix(RUN_PREFIX) for ev in events],
        [ev.position for ev in events],
        [ev.stream_version for ev in events],
        payloads,
    )
