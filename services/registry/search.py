"""SearchModels and SearchModelVersions: the filter grammar every search shares
(modelog_services.query.filter) compiled to SQL over the registry's inline views, keyset-paged.

SQL rather than an in-memory evaluator because the views are plain tables (one row per model, one per
version, tags as a jsonb column): every attribute is a column, every tag a `tags ->> key`, so the
database filters, orders and pages, and a search costs what it returns, not the size of the registry.

A tag the model lacks is "not equal" to every value, as in MLflow (query/sql.py). Times are
milliseconds since the epoch, as MLflow shows them; they sort by the exact instant. Ties end with the
model id (and version), so the order is total and a page token can hold the last row's sort values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog_platform.authz import Visible
from modelog_services.query.filter import Schema, parse_filter
from modelog_services.query.keyset import Params, SortKey, fingerprint
from modelog_services.query.sql import Columns, compile_filter, fetch_page, sort_keys

from .domain import check_alias, check_model_name
from .projections import VIEWS
from .reads import MODEL_FIELDS, VERSION_COLUMNS, VERSION_FROM, model_pb, page_size, version_pb

STAGES = ("None", "Staging", "Production", "Archived")

MODELS = Schema(
    what="registered models",
    item="registered model",
    attributes={"name": "string", "creation_timestamp": "integer", "last_updated_timestamp": "integer"},
    synonyms={"timestamp": "creation_timestamp"},
)
VERSIONS = Schema(
    what="model versions",
    item="model version",
    attributes={
        "name": "string",
        "version": "integer",
        "run_id": "string",
        "current_stage": "choice",
        "creation_timestamp": "integer",
        "last_updated_timestamp": "integer",
    },
    choices={"current_stage": STAGES},
    synonyms={"version_number": "version", "stage": "current_stage", "timestamp": "creation_timestamp"},
)


def _ms(column: str) -> str:
    return f"floor(extract(epoch FROM {column}) * 1000)::bigint"


def _micros(column: str) -> str:
    return f"(extract(epoch FROM {column}) * 1000000)::bigint"


_MODEL_FILTERED = {
    "name": ("m.name", "text"),
    "creation_timestamp": (_ms("m.created_at"), "bigint"),
    "last_updated_timestamp": (_ms("m.updated_at"), "bigint"),
}
MODEL_COLUMNS = Columns(
    filtered=_MODEL_FILTERED,
    sorted={
        "name": ('m.name COLLATE "C"', "text"),
        "creation_timestamp": (_micros("m.created_at"), "bigint"),
        "last_updated_timestamp": (_micros("m.updated_at"), "bigint"),
    },
    tags="m.tags",
)
VERSION_COLUMNS_BY_NAME = Columns(
    filtered={
        **_MODEL_FILTERED,
        "version": ("v.version", "bigint"),
        "run_id": ("v.run_id", "text"),
        "current_stage": ("v.stage", "text"),
        "creation_timestamp": (_ms("v.created_at"), "bigint"),
        "last_updated_timestamp": (_ms("v.updated_at"), "bigint"),
    },
    sorted={
        "name": ('m.name COLLATE "C"', "text"),
        "version": ("v.version", "bigint"),
        "run_id": ('v.run_id COLLATE "C"', "text"),
        "current_stage": ('v.stage COLLATE "C"', "text"),
        "creation_timestamp": (_micros("v.created_at"), "bigint"),
        "last_updated_timestamp": (_micros("v.updated_at"), "bigint"),
    },
    tags="v.tags",
)


@dataclass(frozen=True)
class Page:
    """What a search asks for besides its own fields, and the one query that answers it."""

    filter: str
    order_by: Sequence[str]
    size: int
    token: str


def _visible_sql(visible: Visible, p: Params) -> str:
    """Only models the caller may read: of its projects, or granted to it by name."""
    projects, names = p.add(sorted(visible.projects), "text[]"), p.add(sorted(visible.keys), "text[]")
    return f"(m.project = ANY({projects}) OR m.name = ANY({names}))"


# ---------------------------------------------------------------- the searches

_MODEL_DEFAULT = [SortKey(_micros("m.created_at"), "bigint", True), SortKey("m.model_id", "text", True)]


async def search_models(
    conn: asyncpg.Connection,
    name_contains: str,
    tags: Mapping[str, str],
    include_deleted: bool,
    page: Page,
    visible: Visible | None = None,
) -> tuple[list[pb.Model], str]:
    """Newest first unless `page.order_by` says otherwise; `page.filter` in the shared grammar."""
    expr = parse_filter(page.filter, MODELS)
    keys = sort_keys(
        page.order_by, MODELS, MODEL_COLUMNS, _MODEL_DEFAULT, [SortKey("m.model_id", "text", False)]
    )
    p = Params()
    where = ["true" if include_deleted else "NOT m.deleted"]
    if visible is not None:
        where.append(_visible_sql(visible, p))
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(f"m.name ILIKE {p.add(f'%{escaped}%', 'text')}")
    if tags:
        where.append(f"m.tags @> {p.add(json.dumps(dict(tags)), 'jsonb')}")
    if expr is not None:
        where.append(compile_filter(expr, MODEL_COLUMNS, p))
    fp = fingerprint("models", name_contains, dict(tags), include_deleted, page.filter, list(page.order_by))
    source = f"FROM {VIEWS.models} m"
    size = page_size(page.size)
    rows, token = await fetch_page(conn, MODEL_FIELDS, source, where, p, keys, fp, size, page.token)
    return [model_pb(r) for r in rows], token


@dataclass(frozen=True)
class VersionQuery:
    """SearchModelVersions' own fields (each narrows the search; empty: no narrowing)."""

    model: str = ""
    tags: Mapping[str, str] | None = None
    stage: str = ""
    alias: str = ""
    run_id: str = ""
    statuses: Sequence[str] = ()


_VERSION_DEFAULT = [
    SortKey(_micros("v.created_at"), "bigint", True),
    SortKey("v.model_id", "text", True),
    SortKey("v.version", "bigint", True),
]
_VERSION_TIES = [SortKey("v.model_id", "text", False), SortKey("v.version", "bigint", False)]


async def search_versions(
    conn: asyncpg.Connection, q: VersionQuery, page: Page, visible: Visible | None = None
) -> tuple[list[pb.ModelVersion], str]:
    """Newest first unless `page.order_by` says otherwise; `page.filter` in the shared grammar."""
    expr = parse_filter(page.filter, VERSIONS)
    keys = sort_keys(page.order_by, VERSIONS, VERSION_COLUMNS_BY_NAME, _VERSION_DEFAULT, _VERSION_TIES)
    p = Params()
    statuses = list(q.statuses or ("READY", "DEPRECATED"))
    where = [f"v.status = ANY({p.add(statuses, 'text[]')})"]
    if visible is not None:
        where.append(_visible_sql(visible, p))
    if q.model:
        where.append(f"m.name = {p.add(check_model_name(q.model, 'model'), 'text')}")
    if q.tags:
        where.append(f"v.tags @> {p.add(json.dumps(dict(q.tags)), 'jsonb')}")
    if q.stage:
        where.append(f"v.stage = {p.add(q.stage, 'text')}")
    if q.alias:
        where.append(
            f"EXISTS (SELECT 1 FROM {VIEWS.aliases} a WHERE a.model_id = v.model_id "
            f"AND a.version = v.version AND a.alias = {p.add(check_alias(q.alias), 'text')})"
        )
    if q.run_id:
        where.append(f"v.run_id = {p.add(q.run_id, 'text')}")
    if expr is not None:
        where.append(compile_filter(expr, VERSION_COLUMNS_BY_NAME, p))
    fp = fingerprint(
        "versions",
        q.model,
        dict(q.tags or {}),
        q.stage,
        q.alias,
        q.run_id,
        statuses,
        page.filter,
        list(page.order_by),
    )
    size = page_size(page.size)
    rows, token = await fetch_page(conn, VERSION_COLUMNS, VERSION_FROM, where, p, keys, fp, size, page.token)
    return [version_pb(r) for r in rows], token
