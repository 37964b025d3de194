"""Queries over the registry's views, answered as protobuf messages. One round trip per answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import InvalidArgument, NotFound
from eventlog.errors import Resource
from modelog._gen.registry.v1 import registry_pb2 as pb

from .domain import check_alias, check_model_name
from .events import ModelPolicy, StagePolicy, decode_float
from .projections import VIEWS

T = VIEWS
STAGE_ENUM = {
    "None": pb.STAGE_NONE,
    "Staging": pb.STAGE_STAGING,
    "Production": pb.STAGE_PRODUCTION,
    "Archived": pb.STAGE_ARCHIVED,
}
STAGE_NAME = {v: k for k, v in STAGE_ENUM.items()}
STATUS_ENUM = {
    "READY": pb.VERSION_STATUS_READY,
    "DEPRECATED": pb.VERSION_STATUS_DEPRECATED,
    "DELETED": pb.VERSION_STATUS_DELETED,
}
STATUS_NAME = {v: k for k, v in STATUS_ENUM.items()}
REQUEST_ENUM = {
    "OPEN": pb.REQUEST_STATUS_OPEN,
    "APPROVED": pb.REQUEST_STATUS_APPROVED,
    "REJECTED": pb.REQUEST_STATUS_REJECTED,
    "CANCELLED": pb.REQUEST_STATUS_CANCELLED,
}
MAX_PAGE = 1000
DEFAULT_PAGE = 100


def ts(value: datetime | str | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(datetime.fromisoformat(value) if isinstance(value, str) else value)
    return out


# ---------------------------------------------------------------- policies


def stage_policy_pb(p: StagePolicy) -> pb.StagePolicy:
    return pb.StagePolicy(
        approvals_required=p.approvals_required,
        approver_role=p.approver_role,
        from_stages=[STAGE_ENUM[s] for s in p.from_stages],
        allow_self_approval=p.allow_self_approval,
    )


def policy_pb(p: ModelPolicy) -> pb.ModelPolicy:
    return pb.ModelPolicy(
        staging=stage_policy_pb(p.staging),
        production=stage_policy_pb(p.production),
        archived=stage_policy_pb(p.archived),
        max_production_versions=p.max_production_versions,
    )


# ---------------------------------------------------------------- models

MODEL_FIELDS = f"""
       m.model_id, m.name, m.description, m.tags::text, m.deleted, m.latest_version, m.policy::text,
       m.created_by, m.created_at, m.updated_at, m.project,
       (SELECT coalesce(jsonb_object_agg(a.alias, a.version), '{{}}')::text FROM {T.aliases} a
         WHERE a.model_id = m.model_id) AS aliases,
       (SELECT coalesce(array_agg(v.version ORDER BY v.stage_position), '{{}}') FROM {T.versions} v
         WHERE v.model_id = m.model_id AND v.stage = 'Production') AS production"""
MODEL_SELECT = f"SELECT {MODEL_FIELDS}\n  FROM {T.models} m"


def model_pb(r: asyncpg.Record) -> pb.Model:
    return pb.Model(
        model_id=r["model_id"],
        name=r["name"],
        description=r["description"],
        tags=json.loads(r["tags"]),
        deleted=r["deleted"],
        latest_version=r["latest_version"],
        aliases=json.loads(r["aliases"]),
        production_versions=list(r["production"]),
        policy=policy_pb(ModelPolicy.model_validate_json(r["policy"])),
        created_by=r["created_by"],
        created_at=ts(r["created_at"]),
        updated_at=ts(r["updated_at"]),
        project=r["project"],
    )


async def get_model(conn: asyncpg.Connection, name: str) -> pb.Model:
    row = await conn.fetchrow(f"{MODEL_SELECT} WHERE m.name = $1", check_model_name(name, "model"))
    if row is None:
        raise NotFound(f"no model named {name!r}", resource=Resource("registered_model", name))
    return model_pb(row)


async def get_model_by_id(conn: asyncpg.Connection, model_id: str) -> pb.Model:
    row = await conn.fetchrow(f"{MODEL_SELECT} WHERE m.model_id = $1", model_id)
    if row is None:
        raise NotFound(f"no model with id {model_id!r}")
    return model_pb(row)


async def require_model_id(conn: asyncpg.Connection, name: str) -> str:
    model_id = await conn.fetchval(
        f"SELECT model_id FROM {T.models} WHERE name = $1", check_model_name(name, "model")
    )
    if model_id is None:
        raise NotFound(f"no model named {name!r}", resource=Resource("registered_model", name))
    return str(model_id)


# ---------------------------------------------------------------- paging


def page_size(size: int) -> int:
    if size < 0 or size > MAX_PAGE:
        raise InvalidArgument.field("page_size", f"must be 0 (default {DEFAULT_PAGE}) to {MAX_PAGE}")
    return size or DEFAULT_PAGE


# ---------------------------------------------------------------- versions

VERSION_COLUMNS = f"""
       v.model_id, m.name AS model, v.version, v.stage, v.status, v.run_id, v.artifact_name,
       v.artifact_version, v.manifest_digest, v.description, v.tags::text, v.framework, v.signature,
       v.created_by, v.created_at, v.updated_at, v.stage_changed_at,
       (SELECT coalesce(array_agg(a.alias ORDER BY a.alias), '{{}}') FROM {T.aliases} a
         WHERE a.model_id = v.model_id AND a.version = v.version) AS aliases,
       (SELECT to_jsonb(r)::text FROM {T.transitions} r
         WHERE r.model_id = v.model_id AND r.request_id = v.open_request) AS open_request"""
VERSION_FROM = f"FROM {T.versions} v JOIN {T.models} m ON m.model_id = v.model_id"


def request_pb(r: Mapping[str, Any], model: str) -> pb.TransitionRequest:
    return pb.TransitionRequest(
        request_id=r["request_id"],
        model=model,
        version=r["version"],
        from_stage=STAGE_ENUM[r["from_stage"]],
        to_stage=STAGE_ENUM[r["to_stage"]],
        status=REQUEST_ENUM[r["status"]],
        requested_by=r["requested_by"],
        comment=r["comment"],
        approvals_required=r["approvals_required"],
        approver_role=r["approver_role"],
        approvals=[
            pb.Approval(by=a["by"], comment=a["comment"], at=ts(a["at"]))
            for a in (json.loads(r["approvals"]) if isinstance(r["approvals"], str) else r["approvals"])
        ],
        closed_by=r["closed_by"],
        close_comment=r["close_comment"],
        created_at=ts(r["created_at"]),
        closed_at=ts(r["closed_at"]),
    )


def version_pb(r: asyncpg.Record) -> pb.ModelVersion:
    open_request = json.loads(r["open_request"]) if r["open_request"] else None
    return pb.ModelVersion(
        model=r["model"],
        model_id=r["model_id"],
        version=r["version"],
        stage=STAGE_ENUM[r["stage"]],
        status=STATUS_ENUM[r["status"]],
        run_id=r["run_id"],
        artifact_name=r["artifact_name"],
        artifact_version=r["artifact_version"],
        manifest_digest=r["manifest_digest"],
        description=r["description"],
        tags=json.loads(r["tags"]),
        framework=r["framework"],
        signature=r["signature"],
        aliases=list(r["aliases"]),
        open_request=request_pb(open_request, r["model"]) if open_request else None,
        created_by=r["created_by"],
        created_at=ts(r["created_at"]),
        updated_at=ts(r["updated_at"]),
        stage_changed_at=ts(r["stage_changed_at"]),
    )


def _version_missing(model: str, version: int, alias: str) -> NotFound:
    if version:
        return NotFound(f"model {model!r} has no version {version}")
    if alias:
        return NotFound(f"model {model!r} has no alias {alias!r}")
    return NotFound(f"model {model!r} has no versions")


async def version_row(
    conn: asyncpg.Connection, model: str, version: int = 0, alias: str = "", extra: str = ""
) -> asyncpg.Record:
    """A version by number, else by alias, else the newest one not deleted."""
    check_model_name(model, "ref.model")
    if version < 0:
        raise InvalidArgument.field("ref.version", "must be >= 1 (0: by alias, or the latest)")
    columns = VERSION_COLUMNS + extra
    if version:
        row = await conn.fetchrow(
            f"SELECT {columns} {VERSION_FROM} WHERE m.name = $1 AND v.version = $2", model, version
        )
    elif alias and alias != "latest":
        check_alias(alias, "ref.alias")
        row = await conn.fetchrow(
            f"SELECT {columns} FROM {T.models} m "
            f"JOIN {T.aliases} al ON al.model_id = m.model_id AND al.alias = $2 "
            f"JOIN {T.versions} v ON v.model_id = al.model_id AND v.version = al.version WHERE m.name = $1",
            model,
            alias,
        )
    else:
        row = await conn.fetchrow(
            f"SELECT {columns} {VERSION_FROM} WHERE m.name = $1 AND v.status <> 'DELETED' "
            "ORDER BY v.version DESC LIMIT 1",
            model,
        )
    if row is None:
        await require_model_id(conn, model)  # says "no model" rather than "no version" when that is the case
        raise _version_missing(model, version, alias)
    return row


async def get_version(
    conn: asyncpg.Connection, model: str, version: int = 0, alias: str = ""
) -> pb.ModelVersion:
    return version_pb(await version_row(conn, model, version, alias))


async def get_version_by_id(conn: asyncpg.Connection, model_id: str, version: int) -> pb.ModelVersion:
    row = await conn.fetchrow(
        f"SELECT {VERSION_COLUMNS} {VERSION_FROM} WHERE v.model_id = $1 AND v.version = $2", model_id, version
    )
    if row is None:
        raise NotFound(f"no version {version} of model id {model_id!r}")
    return version_pb(row)


async def version_and_request(
    conn: asyncpg.Connection, model_id: str, version: int, request_id: str
) -> tuple[pb.ModelVersion, pb.TransitionRequest]:
    row = await conn.fetchrow(
        f"SELECT {VERSION_COLUMNS}, (SELECT to_jsonb(r)::text FROM {T.transitions} r "
        "WHERE r.model_id = v.model_id AND r.request_id = $3) AS request "
        f"{VERSION_FROM} WHERE v.model_id = $1 AND v.version = $2",
        model_id,
        version,
        request_id,
    )
    if row is None or row["request"] is None:
        raise NotFound(f"no transition request {request_id!r} for version {version} of model id {model_id!r}")
    return version_pb(row), request_pb(json.loads(row["request"]), row["model"])


# ---------------------------------------------------------------- transitions and lineage


async def list_requests(
    conn: asyncpg.Connection, model: str, version: int, open_only: bool
) -> list[pb.TransitionRequest]:
    model_id = await require_model_id(conn, model)
    rows = await conn.fetch(
        f"SELECT * FROM {T.transitions} WHERE model_id = $1 AND ($2 = 0 OR version = $2) "
        "AND (NOT $3 OR status = 'OPEN') ORDER BY created_at DESC, request_id DESC",
        model_id,
        version,
        open_only,
    )
    return [request_pb(r, model) for r in rows]


async def lineage(conn: asyncpg.Connection, model: str, version: int, alias: str) -> pb.Lineage:
    row = await version_row(
        conn, model, version, alias, extra=", v.run::text AS run, v.artifact::text AS artifact"
    )
    run, artifact = json.loads(row["run"]), json.loads(row["artifact"])
    return pb.Lineage(
        version=version_pb(row),
        run_id=run["run_id"],
        experiment_id=run["experiment_id"],
        run_name=run["run_name"],
        run_status=run["status"],
        params=run["params"],
        truncated_params=run["truncated_params"],
        metrics=[
            pb.LineageMetric(
                key=m["key"],
                last=decode_float(m["last"]),
                last_step=m["last_step"],
                min=decode_float(m["min"]),
                max=decode_float(m["max"]),
            )
            for m in run["metrics"]
        ],
        datasets=[pb.LineageDataset(**d) for d in run["datasets"]],
        artifact_name=artifact["name"],
        artifact_version=artifact["version"],
        artifact_kind=artifact["kind"],
        manifest_digest=artifact["manifest_digest"],
        file_count=artifact["file_count"],
        total_size=artifact["total_size"],
    )
