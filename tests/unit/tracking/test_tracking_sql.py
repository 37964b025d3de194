"""The filter compiler and page tokens of SearchRuns, without a database."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog import InvalidArgument
from modelog_services.tracking.filter import (
    ATTRIBUTES,
    DATASET_FIELDS,
    And,
    Comparison,
    Entity,
    Expr,
    Not,
    Or,
    allowed_ops,
    parse_filter,
    parse_order_by,
)
from modelog_services.tracking.search import Params, compile_filter, decode_token, encode_token, sort_keys

MARK = "\u2603"  # never part of the SQL the compiler writes itself


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    entity: Entity = draw(st.sampled_from(["metric", "param", "tag", "attribute", "dataset"]))
    if entity == "attribute":
        key = draw(st.sampled_from(sorted(ATTRIBUTES)))
    elif entity == "dataset":
        key = draw(st.sampled_from(DATASET_FIELDS))
    else:
        key = MARK + draw(st.text(max_size=8))
    op = draw(st.sampled_from(allowed_ops(entity, key)))
    if op in ("IS NULL", "IS NOT NULL"):
        return Comparison(entity, key, op)
    numeric = entity == "metric" or (entity == "attribute" and ATTRIBUTES[key] == "integer")
    value: st.SearchStrategy[float | int | str] = (
        st.integers(-(2**63), 2**63 - 1) if numeric else st.text(max_size=8).map(lambda s: MARK + s + "'")
    )
    if op in ("IN", "NOT IN"):
        return Comparison(
            entity, key, op, tuple(str(v) for v in draw(st.lists(value, min_size=1, max_size=3)))
        )
    return Comparison(entity, key, op, draw(value))


expressions = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        inner.map(Not),
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(expressions)
def test_values_and_keys_only_ever_travel_as_bind_parameters(expr: Expr) -> None:
    p = Params()
    sql = compile_filter(expr, p)
    assert MARK not in sql and "'" not in sql.replace("'NaN'", "")
    used = {int(n) for n in re.findall(r"\$(\d+)::", sql)}
    assert used == set(range(1, len(p.values) + 1))  # every parameter bound, none dangling


def test_a_filter_compiles_to_exists_over_the_views() -> None:
    p = Params()
    sql = compile_filter(parse_filter("metrics.acc > 0.9 and not params.lr in ('a', 'b')"), p)  # type: ignore[arg-type]
    assert "tracking.run_latest_metrics" in sql and "NOT (EXISTS" in sql and "x.value <> 'NaN'" in sql
    assert p.values == ["acc", 0.9, "lr", ["a", "b"]]  # short values: the indexed prefix is the test
    long = "x" * 300
    p = Params()
    sql = compile_filter(parse_filter(f"params.lr = '{long}'"), p)  # type: ignore[arg-type]
    assert p.values == ["lr", long[:200], long] and "x.value = $3::text" in sql


def test_sort_keys_end_with_a_total_order() -> None:
    keys, joins = sort_keys([parse_order_by("metrics.acc DESC")], Params())
    assert [k.value for k in keys] == ["o0.value", "r.start_time_ms", "r.run_id"]
    assert keys[0].rank and keys[0].descending and len(joins) == 1
    keys, _ = sort_keys([parse_order_by("attributes.start_time"), parse_order_by("run_id DESC")], Params())
    assert [(k.value, k.descending) for k in keys] == [("r.start_time_ms", False), ("r.run_id", True)]


def test_page_tokens_round_trip_and_refuse_anything_else() -> None:
    keys, _ = sort_keys([parse_order_by("metrics.acc DESC")], Params())
    cursor = [[0, float("inf")], [None, 5], [None, "abc"]]
    token = encode_token("fp", cursor)
    assert decode_token(token, "fp", keys) == cursor
    bad = [
        encode_token("other", cursor),
        encode_token("fp", cursor[:2]),
        encode_token("fp", [[0, "text"], [None, 5], [None, "abc"]]),  # a string where a float goes
        encode_token("fp", [[1, 0.5], [None, 5], [None, "abc"]]),  # NaN rank carries no value
        encode_token("fp", [[0, 1.0], [None, True], [None, "abc"]]),
        token[:-2],
        "!!",
        "",
    ]
    for t in bad:
        with pytest.raises(InvalidArgument, match="page_token"):
            decode_token(t, "fp", keys)
