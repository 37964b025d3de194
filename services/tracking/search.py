"""SearchRuns: the filter AST (filter.py) compiled to parameterised SQL over the run views, keyset paging.

Every comparison is true or false for a run, never unknown: a comparison with a metric, param, tag or
dataset the run does not have is false (so `NOT metrics.acc > 0.9` includes runs without acc), and IS
NULL asks for the missing key. Values only ever travel as bind parameters.

Order keys sort missing values last whatever the direction, like MLflow, with NaN metrics just before
them; ties end with start_time DESC and run_id, which makes the order total so a page token can hold
the last row's sort values (keyset paging: stable while runs are added, no OFFSET scans).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from eventlog import InvalidArgument
from modelog_services.query.keyset import (
    Params,
    SortKey,
    after,
    decode_token,
    encode_token,
    fingerprint,
    order_sql,
)

from .filter import And, Comparison, Expr, Not, Or, OrderBy, parse_filter, parse_order_by
from .projections import INDEXED_PREFIX, VIEWS

__all__ = ["Params", "SortKey", "after", "decode_token", "encode_token", "page_size", "search_runs"]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_ORDER_BY = 10
RUN_COLUMNS = (
    "r.run_id, r.experiment_id, r.name, r.status, r.start_time_ms, r.end_time_ms, r.parent_run_id, "
    "r.source_git_commit, r.source_entry_point, r.source_host, r.source_user, r.deleted"
)
_ATTRIBUTE_COLUMNS = {
    "run_id": ("r.run_id", "text"),
    "run_name": ("r.name", "text"),
    "experiment_id": ("r.experiment_id", "text"),
    "status": ("r.status", "text"),
    "start_time": ("r.start_time_ms", "bigint"),
    "end_time": ("r.end_time_ms", "bigint"),
}
_NULLABLE = {"r.end_time_ms"}
_KEY_TABLES = {"metric": "run_latest_metrics", "param": "run_params", "tag": "run_tags"}


# ---------------------------------------------------------------- filters


def _condition(column: str, c: Comparison, p: Params, cast: str) -> str:
    """`column <op> value` for a comparison that is not IS [NOT] NULL."""
    if isinstance(c.value, tuple):  # IN, NOT IN
        quantifier = "= ANY" if c.op == "IN" else "<> ALL"
        return f"{column} {quantifier}({p.add(list(c.value), cast + '[]')})"
    op = "<>" if c.op == "!=" else c.op
    return f"{column} {op} {p.add(c.value, cast)}"


def _keyed(c: Comparison, p: Params) -> str:
    table = getattr(VIEWS, _KEY_TABLES[c.entity])
    has_key = f"SELECT 1 FROM {table} x WHERE x.run_id = r.run_id AND x.key = {p.add(c.key, 'text')}"
    if c.op == "IS NULL":
        return f"NOT EXISTS ({has_key})"
    if c.op == "IS NOT NULL":
        return f"EXISTS ({has_key})"
    if c.entity == "metric":
        cond = _condition("x.value", c, p, "float8")
        if c.op in (">", ">="):
            cond += " AND x.value <> 'NaN'"  # PostgreSQL sorts NaN above every number; IEEE does not
        return f"EXISTS ({has_key} AND {cond})"
    return f"EXISTS ({has_key} AND {_equality(c, p) or _condition('x.value', c, p, 'text')})"


def _equality(c: Comparison, p: Params) -> str | None:
    """= and IN on the indexed prefix, so the (key, left(value, N), run_id) index serves them.

    For a value shorter than N characters, equal prefixes mean equal values (the prefix of a longer
    value is longer than it), so the prefix alone is the whole test and the planner's estimate stays
    right; longer values are compared in full as well.
    """
    if c.op not in ("=", "IN"):
        return None
    values = c.value if isinstance(c.value, tuple) else (str(c.value),)
    prefix = f"left(x.value, {INDEXED_PREFIX})"
    if c.op == "=":
        cond = f"{prefix} = {p.add(values[0][:INDEXED_PREFIX], 'text')}"
    else:
        cond = f"{prefix} = ANY({p.add([v[:INDEXED_PREFIX] for v in values], 'text[]')})"
    if all(len(v) < INDEXED_PREFIX for v in values):
        return cond
    return f"{cond} AND {_condition('x.value', c, p, 'text')}"


def _comparison(c: Comparison, p: Params) -> str:
    if c.entity in _KEY_TABLES:
        return _keyed(c, p)
    if c.entity == "dataset":
        cond = _condition(f"d.{c.key}", c, p, "text")
        return f"EXISTS (SELECT 1 FROM {VIEWS.run_datasets} d WHERE d.run_id = r.run_id AND {cond})"
    column, cast = _ATTRIBUTE_COLUMNS[c.key]
    if c.op in ("IS NULL", "IS NOT NULL"):
        return f"{column} {c.op}"
    cond = _condition(column, c, p, cast)
    return f"COALESCE({cond}, false)" if column in _NULLABLE else cond


def compile_filter(expr: Expr, p: Params) -> str:
    """SQL over the run alias `r`, values bound through `p`."""
    if isinstance(expr, Comparison):
        return _comparison(expr, p)
    if isinstance(expr, Not):
        return f"NOT ({compile_filter(expr.item, p)})"
    joiner = " AND " if isinstance(expr, And) else " OR "
    assert isinstance(expr, And | Or)
    return "(" + joiner.join(compile_filter(item, p) for item in expr.items) + ")"


# ---------------------------------------------------------------- ordering


def sort_keys(orders: Sequence[OrderBy], p: Params) -> tuple[list[SortKey], list[str]]:
    """The sort keys of a search, and the LEFT JOINs they need."""
    keys: list[SortKey] = []
    joins: list[str] = []
    for i, o in enumerate(orders):
        if o.entity in _KEY_TABLES:
            alias = f"o{i}"
            table = getattr(VIEWS, _KEY_TABLES[o.entity])
            key = p.add(o.key, "text")
            joins.append(f"LEFT JOIN {table} {alias} ON {alias}.run_id = r.run_id AND {alias}.key = {key}")
            value = f"{alias}.value"
            if o.entity == "metric":
                rank = f"CASE WHEN {value} IS NULL THEN 2 WHEN {value} = 'NaN' THEN 1 ELSE 0 END"
                keys.append(SortKey(value, "float8", o.descending, rank))
            else:
                keys.append(
                    SortKey(value, "text", o.descending, f"CASE WHEN {value} IS NULL THEN 2 ELSE 0 END")
                )
            continue
        column, cast = _ATTRIBUTE_COLUMNS[o.key]
        nullable = f"CASE WHEN {column} IS NULL THEN 2 ELSE 0 END" if column in _NULLABLE else None
        keys.append(SortKey(column, cast, o.descending, nullable))
    if not any(k.value == "r.start_time_ms" for k in keys):
        keys.append(SortKey("r.start_time_ms", "bigint", True))
    if not any(k.value == "r.run_id" for k in keys):
        keys.append(SortKey("r.run_id", "text", False))
    return keys, joins


# ---------------------------------------------------------------- the query


@dataclass(frozen=True)
class SearchRequest:
    experiment_ids: tuple[str, ...]
    filter: str
    order_by: tuple[str, ...]
    page_size: int
    page_token: str
    view: str  # "active", "deleted" or "all"


def page_size(n: int) -> int:
    if n < 0 or n > MAX_PAGE_SIZE:
        raise InvalidArgument.field(
            "page_size", f"must be between 1 and {MAX_PAGE_SIZE} (0: {DEFAULT_PAGE_SIZE})"
        )
    return n or DEFAULT_PAGE_SIZE


async def search_runs(conn: asyncpg.Connection, req: SearchRequest) -> tuple[list[asyncpg.Record], str]:
    """One page of runs (RUN_COLUMNS) and the token of the next page ('' on the last page)."""
    size = page_size(req.page_size)
    if len(req.order_by) > MAX_ORDER_BY:
        raise InvalidArgument.field("order_by", f"at most {MAX_ORDER_BY} clauses")
    expr = parse_filter(req.filter)
    orders = [parse_order_by(o) for o in req.order_by]
    p = Params()
    keys, joins = sort_keys(orders, p)
    where = []
    if req.experiment_ids:
        where.append(f"r.experiment_id = ANY({p.add(list(req.experiment_ids), 'text[]')})")
    if req.view == "active":
        where.append("NOT r.deleted")
    elif req.view == "deleted":
        where.append("r.deleted")
    if expr is not None:
        where.append(compile_filter(expr, p))
    fp = fingerprint(sorted(req.experiment_ids), req.filter, req.order_by, req.view)
    if req.page_token:
        where.append(after(keys, decode_token(req.page_token, fp, keys), p))
    selected = [f"{k.rank or 'NULL::int'}, {k.value}" for k in keys]
    sql = (
        f"SELECT {RUN_COLUMNS}, {', '.join(selected)} FROM {VIEWS.runs} r {' '.join(joins)} "
        f"WHERE {' AND '.join(where) or 'true'} ORDER BY {order_sql(keys)} LIMIT {size + 1}"
    )
    rows = await conn.fetch(sql, *p.values)
    if len(rows) <= size:
        return list(rows), ""
    last = rows[size - 1]
    width = RUN_COLUMNS.count(",") + 1
    cursor = []
    for i in range(len(keys)):
        rank, value = last[width + 2 * i], last[width + 2 * i + 1]
        cursor.append([rank, value if rank in (None, 0) else None])
    return list(rows[:size]), encode_token(fp, cursor)
