"""A filter AST (filter.py) compiled to SQL over a table whose attributes are columns and whose tags
are one jsonb column: the registry's models and versions, tracking's experiments. (Runs keep their own
compiler, tracking/search.py: their metrics, params and tags are tables of their own.)

MLflow's rule for missing tags holds, as in evaluate.py: a row without the tag fails every comparison
but IS NULL, except the tags of `MISSING_TAG_READS` (the stock client appends
``tags.`mlflow.prompt.is_prompt` != 'true'`` to every model search).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from eventlog import InvalidArgument

from .evaluate import MISSING_TAG_READS
from .filter import And, Comparison, Expr, Not, Or, Schema, parse_order_by
from .keyset import Params, SortKey, after, decode_token, encode_token, order_sql

MAX_ORDER_BY = 10


@dataclass(frozen=True)
class Columns:
    """Where a search's attributes live: SQL to filter on, SQL to sort on, and the tags column."""

    filtered: Mapping[str, tuple[str, str]]  # attribute -> (SQL, cast)
    sorted: Mapping[str, tuple[str, str]]
    tags: str


# ---------------------------------------------------------------- filters


def _condition(column: str, c: Comparison, p: Params, cast: str) -> str:
    if isinstance(c.value, tuple):
        quantifier = "= ANY" if c.op == "IN" else "<> ALL"
        return f"{column} {quantifier}({p.add(list(c.value), cast + '[]')})"
    op = "<>" if c.op == "!=" else c.op
    return f"{column} {op} {p.add(c.value, cast)}"


def _comparison(c: Comparison, cols: Columns, p: Params) -> str:
    if c.entity == "attribute":
        column, cast = cols.filtered[c.key]
        return _condition(column, c, p, cast)
    key = p.add(c.key, "text")
    if c.op == "IS NULL":
        return f"NOT ({cols.tags} ? {key})"
    if c.op == "IS NOT NULL":
        return f"({cols.tags} ? {key})"
    column = f"({cols.tags} ->> {key})"
    if c.key in MISSING_TAG_READS:
        column = f"COALESCE({column}, {p.add(MISSING_TAG_READS[c.key], 'text')})"
    return f"COALESCE({_condition(column, c, p, 'text')}, false)"  # a row without the tag: false


def compile_filter(expr: Expr, cols: Columns, p: Params) -> str:
    """SQL over the columns of `cols`, values bound through `p`."""
    if isinstance(expr, Comparison):
        return _comparison(expr, cols, p)
    if isinstance(expr, Not):
        return f"NOT ({compile_filter(expr.item, cols, p)})"
    assert isinstance(expr, And | Or)
    joiner = " AND " if isinstance(expr, And) else " OR "
    return "(" + joiner.join(compile_filter(item, cols, p) for item in expr.items) + ")"


def sort_keys(
    order_by: Sequence[str],
    schema: Schema,
    cols: Columns,
    default: Sequence[SortKey],
    ties: Sequence[SortKey],
) -> list[SortKey]:
    """The keys of `order_by` (MLflow's "name ASC", "last_updated_timestamp DESC"), then the ties."""
    if len(order_by) > MAX_ORDER_BY:
        raise InvalidArgument.field("order_by", f"at most {MAX_ORDER_BY} clauses")
    keys: list[SortKey] = []
    for i, text in enumerate(order_by):
        o = parse_order_by(text, schema, f"order_by[{i}]")
        if o.entity != "attribute":
            raise InvalidArgument.field(f"order_by[{i}]", f"{schema.what} are ordered by attributes only")
        column, cast = cols.sorted[o.key]
        if all(k.value != column for k in keys):  # a repeated key orders nothing more
            keys.append(SortKey(column, cast, o.descending))
    keys = keys or list(default)
    return keys + [t for t in ties if all(k.value != t.value for k in keys)]


async def fetch_page(
    conn: asyncpg.Connection,
    fields: str,
    source: str,
    where: list[str],
    p: Params,
    keys: Sequence[SortKey],
    fp: str,
    size: int,
    token: str,
) -> tuple[list[asyncpg.Record], str]:
    """One page of `SELECT fields source WHERE ...` in the order of `keys` (never missing values), and
    the token of the next page ('' on the last), bound to the query's fingerprint `fp`."""
    if token:
        where.append(after(keys, decode_token(token, fp, keys), p))
    selected = ", ".join(f"{k.value} AS sort_{i}" for i, k in enumerate(keys))
    rows = await conn.fetch(
        f"SELECT {fields}, {selected} {source} WHERE {' AND '.join(where)} "
        f"ORDER BY {order_sql(keys)} LIMIT {size + 1}",
        *p.values,
    )
    if len(rows) <= size:
        return list(rows), ""
    last = rows[size - 1]
    return list(rows[:size]), encode_token(fp, [[None, last[f"sort_{i}"]] for i in range(len(keys))])
