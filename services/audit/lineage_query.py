"""Reading the lineage view: entities as people write them -> stable keys, graph walks and timelines
as of a time. SQL beside the projection's tables (services/audit/lineage.py)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from eventlog import InvalidArgument, NotFound
from eventlog.projection import Tables
from modelog.shared.inputs import parse_json
from modelog_services.audit.lineage_facts import artifact_key, dataset_key

T = Tables("audit")
KINDS = ("run", "experiment", "dataset", "artifact", "model", "monitor")
MAX_NODES = 10_000
_MODEL_SUFFIX = re.compile(r"^(?P<name>[^/@#]+)(?P<suffix>(/\d+|@[a-z][a-z0-9_-]*|#[A-Za-z]+)?)$")
_STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}


@dataclass
class Names:
    """Model ids and the names they held up to the instant asked about."""

    current: dict[str, str] = field(default_factory=dict)
    """model id -> its name at the instant."""
    held: dict[str, list[str]] = field(default_factory=dict)
    """model id -> every name it held up to the instant."""
    holder: dict[str, str] = field(default_factory=dict)
    """name -> the model that held it last."""

    @classmethod
    async def load(cls, conn: asyncpg.Connection, at: datetime | None) -> Names:
        rows = await conn.fetch(
            f"SELECT model_id, name FROM {T.model_names} WHERE $1::timestamptz IS NULL OR recorded_at <= $1 "
            "ORDER BY position",
            at,
        )
        names = cls()
        for r in rows:
            names.current[r["model_id"]] = r["name"]
            names.held.setdefault(r["model_id"], []).append(r["name"])
            names.holder[r["name"]] = r["model_id"]
        return names

    def canon(self, key: str) -> str:
        """`model-name:churn@champion` (as another log wrote it) -> `model:<id>@champion` when known."""
        if not key.startswith("model-name:"):
            return key
        m = _MODEL_SUFFIX.match(key[len("model-name:") :])
        if m is None or m["name"] not in self.holder:
            return key
        return f"model:{self.holder[m['name']]}{m['suffix']}"

    def aliases(self, key: str) -> list[str]:
        """The name forms other logs may have used for a model key."""
        if not key.startswith("model:"):
            return []
        m = _MODEL_SUFFIX.match(key[len("model:") :])
        if m is None:
            return []
        return [f"model-name:{n}{m['suffix']}" for n in self.held.get(m["name"], [])]

    def label(self, key: str) -> str:
        if key.startswith("model-name:"):
            return "model:" + key[len("model-name:") :]
        if key.startswith("model:"):
            m = _MODEL_SUFFIX.match(key[len("model:") :])
            if m is not None and m["name"] in self.current:
                return f"model:{self.current[m['name']]}{m['suffix']}"
        return key


def _bad(entity: str, why: str) -> InvalidArgument:
    return InvalidArgument.field("entity", f"{entity[:200]!r}: {why}")


def parse_entity(entity: str, names: Names) -> str:
    """An entity as people write it -> its key in the view (models by id)."""
    kind, sep, rest = entity.partition(":")
    if not sep or not rest or kind not in KINDS:
        raise _bad(entity, f"write <kind>:<id>, kind one of {', '.join(KINDS)} (e.g. model:churn/3)")
    if kind == "dataset":
        return dataset_key(rest)
    if kind == "artifact":
        return artifact_key(rest)
    if kind != "model":
        return entity
    m = _MODEL_SUFFIX.match(rest)
    if m is None:
        raise _bad(entity, "a model is model:NAME, model:NAME/N, model:NAME@ALIAS or model:NAME#STAGE")
    suffix = m["suffix"]
    if suffix.startswith("#"):
        stage = _STAGES.get(suffix[1:].lower())
        if stage is None:
            raise _bad(entity, "stages are None, Staging, Production and Archived")
        suffix = f"#{stage}"
    model_id = names.holder.get(m["name"]) or (m["name"] if m["name"] in names.current else None)
    if model_id is None:
        raise NotFound(f"no model named {m['name']!r} in the lineage view")
    return f"model:{model_id}{suffix}"


def _infer_kind(key: str) -> str:
    kind = key.split(":", 1)[0]
    if kind in ("model", "model-name"):
        rest = key.split(":", 1)[1]
        return (
            "model_version"
            if "/" in rest
            else "model_alias"
            if "@" in rest
            else ("model_stage" if "#" in rest else "model")
        )
    if kind == "artifact":
        rest = key.split(":", 1)[1]
        return "artifact_version" if ":v" in rest else "artifact_alias" if "@" in rest else "artifact"
    return kind


@dataclass
class Graph:
    root: str
    nodes: dict[str, dict[str, Any]]
    edges: list[dict[str, Any]]
    truncated: bool = False


_AT = "coalesce($2::timestamptz, 'infinity')"
_HOLDS = f"recorded_at <= {_AT} AND (ended_at IS NULL OR ended_at > {_AT})"


async def _walk(
    conn: asyncpg.Connection,
    root: str,
    downstream: bool,
    depth: int,
    at: datetime | None,
    names: Names,
    g: Graph,
) -> None:
    near = "src" if downstream else "dst"
    frontier, seen = {root}, {root}
    for _ in range(depth):
        if not frontier:
            return
        lookup = {k: k for k in frontier} | {a: k for k in frontier for a in names.aliases(k)}
        rows = await conn.fetch(
            f"SELECT * FROM {T.lineage_edges} WHERE {near} = ANY($1::text[]) AND {_HOLDS} "
            "ORDER BY recorded_at, service, position",
            list(lookup),
            at,
        )
        frontier = set()
        for r in rows:
            src, dst = names.canon(r["src"]), names.canon(r["dst"])
            g.edges.append({**dict(r), "src": src, "dst": dst})
            there = dst if downstream else src
            if there not in seen:
                if len(g.nodes) + len(seen) >= MAX_NODES:
                    g.truncated = True
                    continue
                seen.add(there)
                frontier.add(there)
        g.nodes.update({k: {} for k in seen})


async def lineage(
    conn: asyncpg.Connection, entity: str, direction: str, depth: int, at: datetime | None
) -> tuple[Graph, Names]:
    names = await Names.load(conn, at)
    root = parse_entity(entity, names)
    g = Graph(root, {root: {}}, [])
    if direction in ("up", "both"):
        await _walk(conn, root, False, depth, at, names, g)
    if direction in ("down", "both"):
        await _walk(conn, root, True, depth, at, names, g)
    unique = {(e["service"], e["position"], e["src"], e["dst"], e["relation"]): e for e in g.edges}
    g.edges = list(unique.values())
    await _describe(conn, g, at, names)
    if not g.edges and not g.nodes[root].get("known"):
        when = f" as of {at.isoformat()}" if at else ""
        raise NotFound(f"{entity} is not in the lineage view{when}")
    return g, names


async def _describe(conn: asyncpg.Connection, g: Graph, at: datetime | None, names: Names) -> None:
    lookups = {a: k for k in g.nodes for a in [k, *names.aliases(k)]}
    rows = await conn.fetch(
        f"SELECT node, service, kind, position, recorded_at, attrs::text FROM {T.lineage_nodes} "
        "WHERE node = ANY($1::text[]) AND ($2::timestamptz IS NULL OR recorded_at <= $2) "
        "ORDER BY recorded_at, service",
        list(lookups),
        at,
    )
    for key in g.nodes:
        g.nodes[key] = {"id": key, "kind": _infer_kind(key), "label": names.label(key), "attrs": {}}
    for r in rows:
        node = g.nodes[lookups[r["node"]]]
        if not node.get("known"):
            node.update(known=True, kind=r["kind"], service=r["service"], position=r["position"])
            node["recorded_at"] = r["recorded_at"]
        node["attrs"].update(json.loads(r["attrs"]))


# ---------------------------------------------------------------- timelines


def encode_page(key: Iterable[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_page(token: str) -> tuple[datetime, str, int]:
    try:
        at, service, position = parse_json(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(at), str(service), int(position)
    except (ValueError, TypeError):
        raise InvalidArgument.field("page_token", "not a page token from this server") from None


async def timeline(
    conn: asyncpg.Connection, entity: str, at: datetime | None, limit: int, page: str
) -> tuple[str, list[asyncpg.Record], str]:
    names = await Names.load(conn, at)
    key = parse_entity(entity, names)
    after = decode_page(page) if page else None
    rows = await conn.fetch(
        f"SELECT * FROM {T.timeline} WHERE entity = ANY($1::text[]) "
        "AND ($2::timestamptz IS NULL OR recorded_at <= $2) "
        "AND ($3::timestamptz IS NULL OR (recorded_at, service, position) > ($3, $4::text, $5::bigint)) "
        "ORDER BY recorded_at, service, position LIMIT $6",
        [key, *names.aliases(key)],
        at,
        after[0] if after else None,
        after[1] if after else "",
        after[2] if after else 0,
        limit + 1,
    )
    if not rows and not page:
        when = f" as of {at.isoformat()}" if at else ""
        raise NotFound(f"no event touched {entity}{when}")
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1]
    token = encode_page([last["recorded_at"].isoformat(), last["service"], last["position"]]) if more else ""
    return key, rows, token
