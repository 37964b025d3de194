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
from eventlog.hashchain import micros
from eventlog.projection import Projection, Tables

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
    deleted       boolean NOT NULL DEFAULT false
);
CREATE INDEX ON {t.experiments} (name);
CREATE INDEX ON {t.experiments} (created_at_ms DESC, experiment_id);
"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        for ev in events:
            eid = ev.stream_id.removeprefix(EXPERIMENT_PREFIX)
            at = micros(ev.recorded_at) // 1000
            e = ev.decode(registry)
            if isinstance(e, ExperimentCreated):
                await conn.execute(
                    f"INSERT INTO {t.experiments} (experiment_id, name, description, tags, created_at_ms, "
                    "updated_at_ms) VALUES ($1, $2, $3, $4::jsonb, $5, $6)",
                    e.experiment_id,
                    e.name,
                    e.description,
                    json.dumps(e.tags),
                    e.created_at_ms,
                    at,
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
CREATE INDEX ON {t.run_params} (key, value);
CREATE TABLE {t.run_tags} (
    run_id text NOT NULL,
    key    text NOT NULL,
    value  text NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX ON {t.run_tags} (key, value);
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
CREATE INDEX ON {t.run_latest_metrics} (key, value);
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
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE {t.metric_chunks} (
    run_id        text     NOT NULL,
    key           text     NOT NULL,
    seq           bigint   NOT NULL,  -- log position of the MetricsLogged event
    steps         bigint[] NOT NULL,
    "values"      float8[] NOT NULL,
    timestamps_ms bigint[] NOT NULL,
    PRIMARY KEY (run_id, key, seq)
);
"""

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
                "dataset_schema, dataset_profile) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                run_id,
                ev.position,
                e.name,
                e.digest,
                e.source_type,
                e.source,
                e.context,
                e.dataset_schema,
                e.dataset_profile,
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
    # `last` is the point with the greatest (step, timestamp), ties going to the later one; only the
    # points at each key's greatest step are sorted. min/max skip NaN (LEAST/GREATEST skip NULLs).
    return f"""
WITH e AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[])
                      AS e(run_id, seq, version, payload)
), p AS MATERIALIZED (
    SELECT e.run_id, e.seq, u.key, u.value, u.step, u.ts, u.ord
      FROM e,
           json_to_record(e.payload::json)
               AS b(keys text[], "values" float8[], steps bigint[], timestamps_ms bigint[]),
           unnest(b.keys, b."values", b.steps, b.timestamps_ms) WITH ORDINALITY
               AS u(key, value, step, ts, ord)
), chunks AS (
    INSERT INTO {t.metric_chunks} (run_id, key, seq, steps, "values", timestamps_ms)
    SELECT run_id, key, seq, array_agg(step ORDER BY ord), array_agg(value ORDER BY ord),
           array_agg(ts ORDER BY ord)
      FROM p GROUP BY run_id, key, seq
), versions AS (
    UPDATE {t.runs} r SET version = v.version
      FROM (SELECT run_id, max(version) AS version FROM e GROUP BY run_id) v
     WHERE r.run_id = v.run_id
), agg AS (
    SELECT run_id, key, max(step) AS step, min(value) FILTER (WHERE value <> 'NaN') AS min_value,
           max(value) FILTER (WHERE value <> 'NaN') AS max_value, count(*) AS count
      FROM p GROUP BY run_id, key
), last AS (
    SELECT DISTINCT ON (p.run_id, p.key) p.run_id, p.key, p.value, p.step, p.ts
      FROM p JOIN agg ON agg.run_id = p.run_id AND agg.key = p.key AND agg.step = p.step
     ORDER BY p.run_id, p.key, p.ts DESC, p.seq DESC, p.ord DESC
)
INSERT INTO {t.run_latest_metrics} AS m
       (run_id, key, value, step, timestamp_ms, min_value, max_value, count)
SELECT last.run_id, last.key, last.value, last.step, last.ts, agg.min_value, agg.max_value, agg.count
  FROM last JOIN agg ON agg.run_id = last.run_id AND agg.key = last.key
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
