"""The search-runs filter grammar: MLflow examples, errors that point at a column, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog import InvalidArgument
from modelog_services.tracking.events import RUN_STATUSES
from modelog_services.tracking.filter import (
    ATTRIBUTES,
    DATASET_FIELDS,
    And,
    Comparison,
    Entity,
    Expr,
    Not,
    Or,
    OrderBy,
    allowed_ops,
    format_filter,
    format_order_by,
    parse_filter,
    parse_order_by,
)


def metric(key: str, op: str, value: float | None = None) -> Comparison:
    return Comparison("metric", key, op, value)  # type: ignore[arg-type]


def param(key: str, op: str, value: str | tuple[str, ...] | None = None) -> Comparison:
    return Comparison("param", key, op, value)  # type: ignore[arg-type]


def tag(key: str, op: str, value: str | tuple[str, ...] | None = None) -> Comparison:
    return Comparison("tag", key, op, value)  # type: ignore[arg-type]


def attr(key: str, op: str, value: str | int | tuple[str, ...] | None = None) -> Comparison:
    return Comparison("attribute", key, op, value)  # type: ignore[arg-type]


def dataset(key: str, op: str, value: str | tuple[str, ...]) -> Comparison:
    return Comparison("dataset", key, op, value)  # type: ignore[arg-type]


A, B, C = metric("a", ">", 1.0), metric("b", ">", 2.0), metric("c", ">", 3.0)

EXAMPLES: list[tuple[str, Expr]] = [
    ("metrics.acc > 0.9", metric("acc", ">", 0.9)),
    (
        "metrics.acc > 0.9 and params.lr = '0.01' and tags.team LIKE 'nlp%' "
        "and attributes.status = 'FINISHED'",
        And(
            (
                metric("acc", ">", 0.9),
                param("lr", "=", "0.01"),
                tag("team", "LIKE", "nlp%"),
                attr("status", "=", "FINISHED"),
            )
        ),
    ),
    ("attribute.status != 'FAILED'", attr("status", "!=", "FAILED")),
    ("status IN ('FINISHED', 'KILLED')", attr("status", "IN", ("FINISHED", "KILLED"))),
    ("tags.env NOT IN ('prod', \"staging\")", tag("env", "NOT IN", ("prod", "staging"))),
    ("params.model ILIKE '%BERT%'", param("model", "ILIKE", "%BERT%")),
    ("tags.note IS NULL", tag("note", "IS NULL")),
    ("metrics.loss is not null", metric("loss", "IS NOT NULL")),
    ('metrics."my metric" >= 1e-3', metric("my metric", ">=", 0.001)),
    ("tags.`mlflow.user` = 'ana'", tag("mlflow.user", "=", "ana")),
    ("tags.mlflow.user = 'ana'", tag("mlflow.user", "=", "ana")),
    ("metric.loss <= -1.5e-3", metric("loss", "<=", -0.0015)),
    ("param.lr = 'x' and parameters.bs = '32'", And((param("lr", "=", "x"), param("bs", "=", "32")))),
    ("tag.quote = 'it''s'", tag("quote", "=", "it's")),
    ('params.p = "say ""hi"""', param("p", "=", 'say "hi"')),
    ("tags.t = ''", tag("t", "=", "")),
    ("tags.path LIKE '%\\_%'", tag("path", "LIKE", "%\\_%")),
    ("metrics.`weird``key` = 2", metric("weird`key", "=", 2.0)),
    ("params.unicodé = 'ü'", param("unicodé", "=", "ü")),
    ("METRICS.acc < .5", metric("acc", "<", 0.5)),
    ("metrics.acc = +3", metric("acc", "=", 3.0)),
    ("run_name = 'bold fox'", attr("run_name", "=", "bold fox")),
    ("attributes.start_time >= 1700000000000", attr("start_time", ">=", 1_700_000_000_000)),
    ("end_time IS NULL", attr("end_time", "IS NULL")),
    ("run_id IN ('a1', 'b2')", attr("run_id", "IN", ("a1", "b2"))),
    ("run.experiment_id = '0'", attr("experiment_id", "=", "0")),
    ("attr.run_name LIKE 'x%'", attr("run_name", "LIKE", "x%")),
    ("status LIKE 'FIN%'", attr("status", "LIKE", "FIN%")),
    (
        "datasets.name = 'train' AND dataset.context IN ('training')",
        And((dataset("name", "=", "train"), dataset("context", "IN", ("training",)))),
    ),
    ("metrics.a > 1 OR metrics.b > 2 AND metrics.c > 3", Or((A, And((B, C))))),
    ("(metrics.a > 1 OR metrics.b > 2) AND metrics.c > 3", And((Or((A, B)), C))),
    ("metrics.a > 1 AND metrics.b > 2 AND metrics.c > 3", And((A, B, C))),
    ("(metrics.a > 1 AND metrics.b > 2) AND metrics.c > 3", And((And((A, B)), C))),
    ("NOT metrics.a > 1 AND metrics.b > 2", And((Not(A), B))),
    ("NOT (metrics.a > 1 AND metrics.b > 2)", Not(And((A, B)))),
    ("not not metrics.a > 1 or metrics.b > 2", Or((Not(Not(A)), B))),
    ("((metrics.a > 1))", A),
    ("metrics.a>1 and(tags.b='x'or metrics.c>3)", And((A, Or((tag("b", "=", "x"), C))))),
    ("metrics.a > 1\n  AND\tmetrics.b > 2", And((A, B))),
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES, ids=[t for t, _ in EXAMPLES])
def test_mlflow_syntax_parses_to_the_expected_ast(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected
    assert parse_filter(format_filter(expected)) == expected


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_a_blank_filter_means_no_filter(blank: str) -> None:
    assert parse_filter(blank) is None


def test_the_canonical_form_reads_naturally() -> None:
    ast = parse_filter("not (tags.`my tag` = 'it''s' or metrics.acc>=1e-3) and status in ('FINISHED')")
    assert ast is not None
    assert format_filter(ast) == (
        "NOT (tags.`my tag` = 'it''s' OR metrics.acc >= 0.001) AND attributes.status IN ('FINISHED')"
    )


def test_the_error_message_shows_the_text_and_a_caret_under_the_mistake() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_filter("metrics.acc > and x")
    assert err.value.message == (
        "filter: expected a value after '>', found 'and' at column 15\n"
        "  metrics.acc > and x\n"
        "                ^"
    )
    assert [(v.field, v.description) for v in err.value.violations] == [
        ("filter", "expected a value after '>', found 'and' at column 15")
    ]
    assert err.value.metadata == {"column": "15"}


ERRORS: list[tuple[str, str, int]] = [
    ("metrics.acc > and x", "expected a value after '>', found 'and'", 15),
    ("metrics.acc > 0.9 and", "expected a comparison after 'and', found the end of the text", 22),
    ("(metrics.a > 1", "this '(' is never closed", 1),
    ("params.lr = 0.01", "params.lr compares to strings; quote the value: '0.01'", 13),
    ("metrics.acc > 'high'", "metrics.acc compares to numbers, not to the string 'high'", 15),
    ("foo.bar = 'x'", "unknown prefix 'foo'", 1),
    ("attributes.colour = 'red'", "unknown attribute 'colour'", 1),
    ("acc > 1", "unknown attribute 'acc'", 1),
    ("tags.team = 'nlp", "has no closing '", 13),
    ("metrics.acc ~ 1", "unexpected character '~'", 13),
    ("status IN ()", "expected a value after '(', found ')'", 12),
    ("metrics.acc LIKE '%'", "metrics.acc cannot be compared with LIKE", 13),
    (
        "metrics.acc > 1 metrics.b > 2",
        "expected AND, OR or the end of the filter after '1', found 'metrics.b'",
        17,
    ),
    ("metrics.a > 1)", "expected AND, OR or the end of the filter after '1', found ')'", 14),
    ("start_time > 1.5", "1.5 is not a whole number of milliseconds", 14),
    ("status = 'DONE'", "'DONE' is not a run status", 10),
    ("metrics. > 1", "expected a key after 'metrics.'", 9),
    ("tags.x NOT LIKE 'a'", "expected IN after NOT, found 'LIKE'", 12),
    ("tags.x IS 'a'", "expected NULL after IS", 11),
    ("metrics.a > 1e999", "1e999 is too large", 13),
    ("datasets.size = '1'", "unknown dataset field 'size'", 1),
    ("run_name IS NULL", "run_name cannot be compared with IS NULL", 10),
    ("tags.x IN ('a' 'b')", "expected ',' or ')' in the IN list, found \"'b'\"", 16),
    ("AND metrics.a > 1", "expected a comparison, found 'AND'", 1),
    ("metrics.a = 1abc", "'1a' is not a number", 13),
    ("metrics.a > 1 AND (metrics.b > 2 metrics.c > 3)", "expected AND, OR or ')', found 'metrics.c'", 34),
    ("metrics.a >", "expected a value after '>', found the end of the text", 12),
    ("metrics.a", "expected an operator", 10),
]


@pytest.mark.parametrize(("text", "what", "column"), ERRORS, ids=[t for t, _, _ in ERRORS])
def test_a_malformed_filter_is_invalid_and_points_at_the_column(text: str, what: str, column: int) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_filter(text)
    headline, excerpt, caret = err.value.message.split("\n")
    assert what in headline
    assert headline.endswith(f" at column {column}")
    assert err.value.violations[0].field == "filter"
    assert caret.index("^") - 2 == column - 1 and excerpt[2:] == text


def test_the_caret_stays_under_the_mistake_in_a_long_filter() -> None:
    text = " AND ".join(f"metrics.m{i} > {i}" for i in range(20)) + " AND tags.x = 'y' AND metrics.z ? 1"
    with pytest.raises(InvalidArgument) as err:
        parse_filter(text)
    _, excerpt, caret = err.value.message.split("\n")
    assert excerpt.startswith("  ...") and len(excerpt) <= 110
    assert excerpt[caret.index("^")] == "?"


def test_deep_nesting_is_refused_before_it_exhausts_the_stack() -> None:
    assert parse_filter("(" * 50 + "metrics.a > 1" + ")" * 50) == A
    with pytest.raises(InvalidArgument, match="nests deeper than 100 levels"):
        parse_filter("(" * 5000 + "metrics.a > 1" + ")" * 5000)
    with pytest.raises(InvalidArgument, match="nests deeper than 100 levels"):
        parse_filter("NOT " * 5000 + "metrics.a > 1")


# ---------------------------------------------------------------- order by


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.acc DESC", OrderBy("metric", "acc", descending=True)),
        ("attributes.start_time", OrderBy("attribute", "start_time")),
        ("params.lr asc", OrderBy("param", "lr")),
        ("tags.`mlflow.user` desc", OrderBy("tag", "mlflow.user", descending=True)),
        ("run_name", OrderBy("attribute", "run_name")),
        ('metrics."val loss"', OrderBy("metric", "val loss")),
    ],
)
def test_order_by_clauses_parse_and_round_trip(text: str, expected: OrderBy) -> None:
    assert parse_order_by(text) == expected
    assert parse_order_by(format_order_by(expected)) == expected


@pytest.mark.parametrize(
    ("text", "what", "column"),
    [
        ("metrics.acc DOWN", "expected ASC, DESC or the end of the clause, found 'DOWN'", 13),
        ("datasets.name", "runs cannot be ordered by a dataset field", 1),
        ("", "expected a column such as metrics.acc, found the end of the text", 1),
        ("metrics.acc DESC, params.lr", "expected ASC, DESC or the end of the clause, found ','", 17),
        ("colour DESC", "unknown attribute 'colour'", 1),
    ],
)
def test_a_malformed_order_by_is_invalid_and_points_at_the_column(text: str, what: str, column: int) -> None:
    with pytest.raises(InvalidArgument, match=f"^order_by: .*{what}.* at column {column}\n") as err:
        parse_order_by(text)
    assert err.value.violations[0].field == "order_by"


# ---------------------------------------------------------------- properties

keys = st.text(min_size=1, max_size=10)
strings = st.text(max_size=10)


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    entity: Entity = draw(st.sampled_from(["metric", "param", "tag", "attribute", "dataset"]))
    if entity == "attribute":
        key = draw(st.sampled_from(sorted(ATTRIBUTES)))
    elif entity == "dataset":
        key = draw(st.sampled_from(DATASET_FIELDS))
    else:
        key = draw(keys)
    op = draw(st.sampled_from(allowed_ops(entity, key)))
    kind = "number" if entity == "metric" else ATTRIBUTES[key] if entity == "attribute" else "string"
    scalar: st.SearchStrategy[float | int | str] = {
        "number": st.floats(allow_nan=False, allow_infinity=False),
        "integer": st.integers(-(2**63), 2**63 - 1),
        "string": strings,
        "choice": strings if op in ("LIKE", "ILIKE") else st.sampled_from(RUN_STATUSES),
    }[kind]
    if op in ("IS NULL", "IS NOT NULL"):
        return Comparison(entity, key, op)
    if op in ("IN", "NOT IN"):
        return Comparison(entity, key, op, tuple(draw(st.lists(scalar, min_size=1, max_size=3))))  # type: ignore[arg-type]
    return Comparison(entity, key, op, draw(scalar))


expressions = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        inner.map(Not),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(expressions)
def test_parse_of_format_gives_back_the_same_ast(expr: Expr) -> None:
    assert parse_filter(format_filter(expr)) == expr


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["metric", "param", "tag"]), keys, st.booleans())
def test_order_by_round_trips_for_any_key(entity: Entity, key: str, descending: bool) -> None:
    order = OrderBy(entity, key, descending)
    assert parse_order_by(format_order_by(order)) == order


soup = st.lists(
    st.sampled_from(
        [
            "metrics.a",
            "tags.`b c`",
            "status",
            "AND",
            "OR",
            "NOT",
            "IN",
            "IS",
            "NULL",
            "LIKE",
            "(",
            ")",
            ",",
            "=",
            ">",
            "!=",
            "'x'",
            "'",
            "1.5",
            "-2e3",
            "`",
            ".",
            "\n",
            "'FINISHED'",
        ]
    ),
    max_size=12,
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=30), soup))
def test_any_text_either_parses_or_is_invalid_argument(text: str) -> None:
    try:
        expr = parse_filter(text)
    except InvalidArgument as err:
        assert err.violations[0].field == "filter" and "at column " in err.message
    else:
        assert expr is None or parse_filter(format_filter(expr)) == expr
