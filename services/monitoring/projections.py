"""The monitoring read model, written inline in the append transaction (a closed window, a raised alert
is readable the moment the call returns) and rebuildable from position 0.

Three tables: monitors (configuration, baseline, the open window), windows (blob digests, profile,
drift result, performance) and alerts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from eventlog import DomainEvent, RecordedEvent
from eventlog.projection import Projection, Tables

from .events import (
    AlertRaised,
    AlertResolved,
    BaselineSet,
    DriftDetected,
    LabelsLogged,
    MonitorConfigured,
    PerformanceDegraded,
    PredictionsLogged,
    RetrainRequested,
    WindowClosed,
    WindowProfiled,
    registry,
)

SCHEMA = "monitoring"
MONITOR_PREFIX = "monitor-"
VIEWS = Tables(SCHEMA)
HANDLED = (
    MonitorConfigured,
    BaselineSet,
    PredictionsLogged,
    WindowClosed,
    WindowProfiled,
    DriftDetected,
    LabelsLogged,
    PerformanceDegraded,
    AlertRaised,
    RetrainRequested,
    AlertResolved,
)


class MonitoringView(Projection):
    name = "monitoring_monitors"
    schema = SCHEMA
    sources = (SCHEMA,)
    tables = ("monitors", "windows", "alerts")
    handles = frozenset(c.type for c in HANDLED)

    def upgrade(self, t: Tables) -> str:
        return f"ALTER TABLE {t.monitors} ADD COLUMN IF NOT EXISTS project text NOT NULL DEFAULT 'default';"

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.monitors} (
    name           text        PRIMARY KEY,
    model          text        NOT NULL,
    model_ref      text        NOT NULL,
    model_version  bigint      NOT NULL,
    deployment     text        NOT NULL,
    config         jsonb       NOT NULL,
    baseline       jsonb,
    baseline_at    timestamptz,
    open_window    bigint      NOT NULL DEFAULT 1,
    open_rows      bigint      NOT NULL DEFAULT 0,
    windows_closed bigint      NOT NULL DEFAULT 0,
    open_alerts    bigint      NOT NULL DEFAULT 0,
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    project        text        NOT NULL DEFAULT 'default'
);
CREATE INDEX ON {t.monitors} (model);
CREATE TABLE {t.windows} (
    monitor         text        NOT NULL,
    window_no       bigint      NOT NULL,
    status          text        NOT NULL DEFAULT 'open',
    rows            bigint      NOT NULL DEFAULT 0,
    digests         text[]      NOT NULL DEFAULT '{{}}',
    labelled_rows   bigint      NOT NULL DEFAULT 0,
    label_digests   text[]      NOT NULL DEFAULT '{{}}',
    dataset_drift   boolean     NOT NULL DEFAULT false,
    drift_share     double precision NOT NULL DEFAULT 0,
    drifted_columns text[]      NOT NULL DEFAULT '{{}}',
    performance     jsonb       NOT NULL DEFAULT '{{}}',
    profile         jsonb,
    drift           jsonb,
    close_reason    text        NOT NULL DEFAULT '',
    opened_at       timestamptz NOT NULL,
    closed_at       timestamptz,
    profiled_at     timestamptz,
    PRIMARY KEY (monitor, window_no)
);
CREATE TABLE {t.alerts} (
    alert_id          text        PRIMARY KEY,
    monitor           text        NOT NULL,
    kind              text        NOT NULL,
    window_no         bigint      NOT NULL,
    rule              text        NOT NULL,
    message           text        NOT NULL,
    status            text        NOT NULL DEFAULT 'open',
    retrain_requested boolean     NOT NULL DEFAULT false,
    raised_at         timestamptz NOT NULL,
    resolved_by       text        NOT NULL DEFAULT '',
    resolution        text        NOT NULL DEFAULT '',
    resolved_at       timestamptz
);
CREATE INDEX ON {t.alerts} (monitor, raised_at);
"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        for ev in events:
            e = ev.decode(registry)
            monitor = ev.stream_id.removeprefix(MONITOR_PREFIX)
            await _apply(conn, t, e, monitor, ev.recorded_at, ev.metadata().actor)


async def _apply(
    conn: asyncpg.Connection, t: Tables, e: DomainEvent, monitor: str, at: datetime, actor: str
) -> None:
    match e:
        case MonitorConfigured():
            await conn.execute(
                f"INSERT INTO {t.monitors} (name, model, model_ref, model_version, deployment, config, "
                "created_by, created_at, updated_at, project) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $8, $9)",
                monitor,
                e.model,
                e.model_ref,
                e.model_version,
                e.deployment,
                e.config.model_dump_json(),
                actor,
                at,
                e.project,
            )
        case BaselineSet():
            baseline = e.model_dump(mode="json", exclude={"profile"})
            await conn.execute(
                f"UPDATE {t.monitors} SET baseline = $2::jsonb, baseline_at = $3, updated_at = $3 "
                "WHERE name = $1",
                monitor,
                json.dumps(baseline),
                at,
            )
        case PredictionsLogged():
            await conn.execute(
                f"INSERT INTO {t.windows} AS w (monitor, window_no, rows, digests, opened_at) "
                "VALUES ($1, $2, $3, ARRAY[$4], $5) ON CONFLICT (monitor, window_no) DO UPDATE SET "
                "rows = w.rows + excluded.rows, digests = w.digests || excluded.digests",
                monitor,
                e.window,
                e.rows,
                e.digest,
                e.at,
            )
            await conn.execute(
                f"UPDATE {t.monitors} SET open_window = $2, open_rows = (SELECT rows FROM {t.windows} "
                "WHERE monitor = $1 AND window_no = $2), updated_at = $3 WHERE name = $1",
                monitor,
                e.window,
                at,
            )
        case WindowClosed():
            await conn.execute(
                f"UPDATE {t.windows} SET status = 'closed', close_reason = $3, closed_at = $4 "
                "WHERE monitor = $1 AND window_no = $2",
                monitor,
                e.window,
                e.reason,
                e.at,
            )
            await conn.execute(
                f"UPDATE {t.monitors} SET open_window = $2 + 1, open_rows = 0, "
                "windows_closed = windows_closed + 1, updated_at = $3 WHERE name = $1",
                monitor,
                e.window,
                at,
            )
        case WindowProfiled():
            await conn.execute(
                f"UPDATE {t.windows} SET status = 'profiled', dataset_drift = $3, drift_share = $4, "
                "drifted_columns = $5, performance = performance || $6::jsonb, profile = $7::jsonb, "
                "drift = $8::jsonb, profiled_at = $9 WHERE monitor = $1 AND window_no = $2",
                monitor,
                e.window,
                e.dataset_drift,
                e.drift_share,
                list(e.drifted_columns),
                json.dumps(e.performance),
                json.dumps(e.profile),
                json.dumps(e.drift),
                e.at,
            )
        case LabelsLogged():
            for w in e.windows:
                await conn.execute(
                    f"UPDATE {t.windows} SET labelled_rows = $3, performance = performance || $4::jsonb, "
                    "label_digests = label_digests || ARRAY[$5] WHERE monitor = $1 AND window_no = $2",
                    monitor,
                    w.window,
                    w.labelled_rows,
                    json.dumps(w.performance),
                    e.digest,
                )
        case AlertRaised():
            await conn.execute(
                f"INSERT INTO {t.alerts} (alert_id, monitor, kind, window_no, rule, message, raised_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                e.alert_id,
                monitor,
                e.kind,
                e.window,
                e.rule,
                e.message,
                at,
            )
            await conn.execute(
                f"UPDATE {t.monitors} SET open_alerts = open_alerts + 1 WHERE name = $1", monitor
            )
        case RetrainRequested():
            await conn.execute(
                f"UPDATE {t.alerts} SET retrain_requested = true WHERE alert_id = $1", e.alert_id
            )
        case AlertResolved():
            await conn.execute(
                f"UPDATE {t.alerts} SET status = 'resolved', resolved_by = $2, resolution = $3, "
                "resolved_at = $4 WHERE alert_id = $1",
                e.alert_id,
                e.by,
                e.comment,
                at,
            )
            await conn.execute(
                f"UPDATE {t.monitors} SET open_alerts = open_alerts - 1 WHERE name = $1", monitor
            )
        case DriftDetected() | PerformanceDegraded():
            pass  # facts for subscribers; the window row already holds the statistics
