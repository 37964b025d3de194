"""The registry's read model, written inline in the append transaction (a new version, alias or
approval is readable the moment the call returns) and rebuildable from position 0.

Four tables: models, versions (with the lineage copied from the ModelVersionCreated event),
aliases, and transition requests with their approvals. Comments are read from the log (History).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from eventlog import DomainEvent, RecordedEvent
from eventlog.projection import Projection, Tables

from .events import (
    AliasRemoved,
    AliasSet,
    ModelDeleted,
    ModelDescribed,
    ModelPolicy,
    ModelRegistered,
    ModelRenamed,
    ModelRestored,
    ModelTagsSet,
    ModelVersionCreated,
    PolicySet,
    TransitionApproved,
    TransitionCancelled,
    TransitionRejected,
    TransitionRequested,
    VersionAnnotated,
    VersionDeleted,
    VersionDeprecated,
    VersionStageChanged,
    registry,
)

SCHEMA = "registry"
MODEL_PREFIX = "model-"
VIEWS = Tables(SCHEMA)
"""The live tables, for readers."""
DEFAULT_POLICY = ModelPolicy().model_dump_json()


def _types(*classes: type[DomainEvent]) -> frozenset[str]:
    return frozenset(c.type for c in classes)


MODEL_EVENTS = (
    ModelRegistered,
    ModelRenamed,
    ModelDescribed,
    ModelTagsSet,
    ModelDeleted,
    ModelRestored,
    PolicySet,
)
VERSION_EVENTS = (
    ModelVersionCreated,
    VersionAnnotated,
    VersionDeprecated,
    VersionDeleted,
    AliasSet,
    AliasRemoved,
)
TRANSITION_EVENTS = (
    TransitionRequested,
    TransitionApproved,
    TransitionRejected,
    TransitionCancelled,
    VersionStageChanged,
)


class RegistryView(Projection):
    name = "registry_models"
    schema = SCHEMA
    sources = (SCHEMA,)
    tables = ("models", "versions", "aliases", "transitions")
    handles = _types(*MODEL_EVENTS, *VERSION_EVENTS, *TRANSITION_EVENTS)

    def upgrade(self, t: Tables) -> str:
        return f"ALTER TABLE {t.models} ADD COLUMN IF NOT EXISTS project text NOT NULL DEFAULT 'default';"

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.models} (
    model_id       text        PRIMARY KEY,
    name           text        NOT NULL,
    description    text        NOT NULL,
    tags           jsonb       NOT NULL,
    policy         jsonb       NOT NULL,
    latest_version bigint      NOT NULL DEFAULT 0,
    deleted        boolean     NOT NULL DEFAULT false,
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    project        text        NOT NULL DEFAULT 'default'
);
CREATE INDEX ON {t.models} (name);
CREATE INDEX ON {t.models} (project);
CREATE INDEX ON {t.models} (created_at DESC, model_id);
CREATE TABLE {t.versions} (
    model_id         text        NOT NULL,
    version          bigint      NOT NULL,
    run_id           text        NOT NULL,
    artifact_name    text        NOT NULL,
    artifact_version bigint      NOT NULL,
    manifest_digest  text        NOT NULL,
    stage            text        NOT NULL DEFAULT 'None',
    stage_position   bigint      NOT NULL,
    status           text        NOT NULL DEFAULT 'READY',
    description      text        NOT NULL,
    tags             jsonb       NOT NULL,
    framework        text        NOT NULL,
    signature        text        NOT NULL,
    open_request     text,
    run              jsonb       NOT NULL,
    artifact         jsonb       NOT NULL,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    stage_changed_at timestamptz NOT NULL,
    PRIMARY KEY (model_id, version)
);
CREATE INDEX ON {t.versions} (run_id);
CREATE INDEX ON {t.versions} (model_id, stage);
CREATE TABLE {t.aliases} (
    model_id text        NOT NULL,
    alias    text        NOT NULL,
    version  bigint      NOT NULL,
    set_by   text        NOT NULL,
    set_at   timestamptz NOT NULL,
    PRIMARY KEY (model_id, alias)
);
CREATE INDEX ON {t.aliases} (model_id, version);
CREATE TABLE {t.transitions} (
    request_id         text        NOT NULL,
    model_id           text        NOT NULL,
    version            bigint      NOT NULL,
    from_stage         text        NOT NULL,
    to_stage           text        NOT NULL,
    status             text        NOT NULL DEFAULT 'OPEN',
    requested_by       text        NOT NULL,
    comment            text        NOT NULL,
    approvals_required int         NOT NULL,
    approver_role      text        NOT NULL,
    approvals          jsonb       NOT NULL DEFAULT '[]',
    closed_by          text        NOT NULL DEFAULT '',
    close_comment      text        NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL,
    closed_at          timestamptz,
    PRIMARY KEY (model_id, request_id)
);
CREATE INDEX ON {t.transitions} (model_id, version);
"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        for ev in events:
            e = ev.decode(registry)
            at = ev.occurred_at
            model_id = ev.stream_id.removeprefix(MODEL_PREFIX)
            by = ev.metadata().acted_by
            if isinstance(e, MODEL_EVENTS):
                await _model_event(conn, t, e, model_id, at, by)
            elif isinstance(e, VERSION_EVENTS):
                await _version_event(conn, t, e, model_id, at, by)
            else:
                await _transition_event(conn, t, e, model_id, at, by, ev.position)


async def _model_event(
    conn: asyncpg.Connection, t: Tables, e: DomainEvent, model_id: str, at: datetime, actor: str
) -> None:
    if isinstance(e, ModelRegistered):
        await conn.execute(
            f"INSERT INTO {t.models} (model_id, name, description, tags, policy, created_by, created_at, "
            "updated_at, project) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $7, $8)",
            model_id,
            e.name,
            e.description,
            json.dumps(e.tags),
            DEFAULT_POLICY,
            actor,
            at,
            e.project,
        )
        return
    value: object
    match e:
        case ModelRenamed(name=name):
            assignment, value = "name = $3", name
        case ModelDescribed(description=description):
            assignment, value = "description = $3", description
        case ModelTagsSet(tags=tags, deleted_keys=gone):
            assignment, value = "tags = (tags || $3::jsonb) - $4::text[]", json.dumps(tags)
            await conn.execute(
                f"UPDATE {t.models} SET {assignment}, updated_at = $2 WHERE model_id = $1",
                model_id,
                at,
                value,
                list(gone),
            )
            return
        case ModelDeleted() | ModelRestored():
            assignment, value = "deleted = $3::boolean", isinstance(e, ModelDeleted)
        case PolicySet(policy=policy):
            assignment, value = "policy = $3::jsonb", policy.model_dump_json()
        case _:
            raise TypeError(f"not a model event: {e!r}")
    await conn.execute(
        f"UPDATE {t.models} SET {assignment}, updated_at = $2 WHERE model_id = $1", model_id, at, value
    )


async def _version_event(
    conn: asyncpg.Connection, t: Tables, e: DomainEvent, model_id: str, at: datetime, actor: str
) -> None:
    match e:
        case ModelVersionCreated(version=n, run=run, artifact=a):
            await conn.execute(
                f"WITH v AS (INSERT INTO {t.versions} (model_id, version, run_id, artifact_name, "
                "artifact_version, manifest_digest, stage_position, description, tags, framework, "
                "signature, run, artifact, created_by, created_at, updated_at, stage_changed_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8::jsonb, $9, $10, $11::jsonb, $12::jsonb, $13, "
                "$14, $14, $14)) "
                f"UPDATE {t.models} SET latest_version = greatest(latest_version, $2), updated_at = $14 "
                "WHERE model_id = $1",
                model_id,
                n,
                run.run_id,
                a.name,
                a.version,
                a.manifest_digest,
                e.description,
                json.dumps(e.tags),
                e.framework,
                e.signature,
                run.model_dump_json(),
                a.model_dump_json(),
                actor,
                at,
            )
        case VersionAnnotated(version=n, description=description, tags=tags, deleted_tag_keys=gone):
            await conn.execute(
                f"UPDATE {t.versions} SET description = coalesce($3, description), "
                "tags = (tags || $4::jsonb) - $5::text[], updated_at = $6 "
                "WHERE model_id = $1 AND version = $2",
                model_id,
                n,
                description,
                json.dumps(tags),
                list(gone),
                at,
            )
        case VersionDeprecated(version=n):
            await conn.execute(
                f"UPDATE {t.versions} SET status = 'DEPRECATED', updated_at = $3 "
                "WHERE model_id = $1 AND version = $2",
                model_id,
                n,
                at,
            )
        case VersionDeleted(version=n):
            # MLflow's registered model is updated by a version's deletion too (last_updated_timestamp).
            await conn.execute(
                f"WITH v AS (UPDATE {t.versions} SET status = 'DELETED', updated_at = $3 "
                "WHERE model_id = $1 AND version = $2) "
                f"UPDATE {t.models} SET updated_at = $3 WHERE model_id = $1",
                model_id,
                n,
                at,
            )
        case AliasSet(alias=alias, version=n):
            await conn.execute(
                f"INSERT INTO {t.aliases} (model_id, alias, version, set_by, set_at) "
                "VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version, "
                "set_by = excluded.set_by, set_at = excluded.set_at",
                model_id,
                alias,
                n,
                actor,
                at,
            )
        case AliasRemoved(alias=alias):
            await conn.execute(f"DELETE FROM {t.aliases} WHERE model_id = $1 AND alias = $2", model_id, alias)


async def _close_request(
    conn: asyncpg.Connection,
    t: Tables,
    model_id: str,
    request_id: str,
    status: str,
    by: str,
    comment: str,
    at: datetime,
) -> None:
    await conn.execute(
        f"WITH r AS (UPDATE {t.transitions} "
        "SET status = $3, closed_by = $4, close_comment = $5, closed_at = $6 "
        "WHERE model_id = $1 AND request_id = $2 RETURNING version) "
        f"UPDATE {t.versions} v SET open_request = NULL FROM r "
        "WHERE v.model_id = $1 AND v.version = r.version AND v.open_request = $2",
        model_id,
        request_id,
        status,
        by,
        comment,
        at,
    )


async def _transition_event(
    conn: asyncpg.Connection,
    t: Tables,
    e: DomainEvent,
    model_id: str,
    at: datetime,
    actor: str,
    position: int,
) -> None:
    match e:
        case TransitionRequested():
            await conn.execute(
                f"WITH r AS (INSERT INTO {t.transitions} (request_id, model_id, version, from_stage, "
                "to_stage, requested_by, comment, approvals_required, approver_role, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)) "
                f"UPDATE {t.versions} SET open_request = $1 WHERE model_id = $2 AND version = $3",
                e.request_id,
                model_id,
                e.version,
                e.from_stage,
                e.to_stage,
                e.by,
                e.comment,
                e.approvals_required,
                e.approver_role,
                at,
            )
        case TransitionApproved(request_id=rid, by=by, comment=comment):
            await conn.execute(
                f"UPDATE {t.transitions} SET approvals = approvals || jsonb_build_array(jsonb_build_object("
                "'by', $3::text, 'comment', $4::text, 'at', $5::timestamptz)) "
                "WHERE model_id = $1 AND request_id = $2",
                model_id,
                rid,
                by,
                comment,
                at,
            )
        case TransitionRejected(request_id=rid, by=by, comment=comment):
            await _close_request(conn, t, model_id, rid, "REJECTED", by, comment, at)
        case TransitionCancelled(request_id=rid, by=by, reason=reason):
            await _close_request(conn, t, model_id, rid, "CANCELLED", by, reason, at)
        case VersionStageChanged(version=n, to_stage=to, request_id=rid):
            # The request that moved this version (not one that archived it in passing) is approved;
            # the model is updated too, as MLflow's transition-stage updates its registered model.
            await conn.execute(
                f"WITH r AS (UPDATE {t.transitions} SET status = 'APPROVED', closed_by = $6, closed_at = $5 "
                "WHERE model_id = $1 AND request_id = $7 AND version = $2), "
                f"m AS (UPDATE {t.models} SET updated_at = $5 WHERE model_id = $1) "
                f"UPDATE {t.versions} SET stage = $3, stage_position = $4, stage_changed_at = $5, "
                "updated_at = $5, open_request = CASE WHEN open_request = $7 THEN NULL ELSE open_request END "
                "WHERE model_id = $1 AND version = $2",
                model_id,
                n,
                to,
                position,
                at,
                actor,
                rid,
            )
