"""The one search grammar (modelog_services.query) as the registry, experiments and the gateway's
logged models use it: their vocabularies, errors that name the column, the SQL it compiles to, the
in-memory evaluator, and the gateway's offset pages."""

from __future__ import annotations

import pytest

from eventlog.errors import InvalidArgument
from modelog_services.gateway.mlflow.models import LOGGED_MODELS
from modelog_services.gateway.mlflow.registryversions import mlflow_version_filter
from modelog_services.gateway.mlflow.search import page
from modelog_services.query.evaluate import matches
from modelog_services.query.filter import And, Comparison, Not, Or, parse_filter, parse_order_by
from modelog_services.query.keyset import Params
from modelog_services.query.sql import compile_filter
from modelog_services.registry.search import MODEL_COLUMNS, MODELS, VERSIONS
from modelog_services.tracking.reads import EXPERIMENTS


def test_registered_model_filters_take_or_not_and_parentheses() -> None:
    got = parse_filter("name LIKE 'churn%' AND (tags.team = 'nlp' OR NOT creation_timestamp > 5)", MODELS)
    assert got == And(
        (
            Comparison("attribute", "name", "LIKE", "churn%"),
            Or(
                (
                    Comparison("tag", "team", "=", "nlp"),
                    Not(Comparison("attribute", "creation_timestamp", ">", 5)),
                )
            ),
        )
    )
    # what the stock client appends to every model search, with MLflow's singular prefix
    prompt = parse_filter("name = 'a' AND tag.`mlflow.prompt.is_prompt` != 'true'", MODELS)
    assert prompt == And(
        (
            Comparison("attribute", "name", "=", "a"),
            Comparison("tag", "mlflow.prompt.is_prompt", "!=", "true"),
        )
    )


def test_model_version_synonyms_resolve_to_the_registry_attribute() -> None:
    assert parse_filter("version_number >= 2", VERSIONS) == Comparison("attribute", "version", ">=", 2)
    assert parse_filter("stage = 'Staging'", VERSIONS) == Comparison(
        "attribute", "current_stage", "=", "Staging"
    )
    assert parse_order_by("timestamp DESC", MODELS).key == "creation_timestamp"


@pytest.mark.parametrize(
    ("schema", "text", "words", "column"),
    [
        (MODELS, "nosuch = 'a'", "unknown attribute 'nosuch'; attributes of registered models", 1),
        (MODELS, "name = 'a' AND metrics.acc > 1", "unknown prefix 'metrics'", 16),
        (MODELS, "creation_timestamp > 'x'", "compares to numbers", 22),
        (MODELS, "name > 'a'", "cannot be compared with >", 6),
        (MODELS, "name = 'a' OR", "expected a comparison", 14),
        (VERSIONS, "current_stage = 'Live'", "'Live' is not a model version current_stage", 17),
        (VERSIONS, "version = 1.5", "not a whole number", 11),
        (EXPERIMENTS, "name = 'a' AND (tags.x = 'b'", "never closed", 16),
    ],
)
def test_a_bad_filter_is_invalid_argument_naming_its_column(
    schema: object, text: str, words: str, column: int
) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_filter(text, schema)  # type: ignore[arg-type]
    assert words in info.value.message
    assert info.value.violations[0].field == "filter"
    assert info.value.metadata["column"] == str(column)


def test_models_are_ordered_by_attributes_only() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_order_by("nosuch DESC", MODELS, "order_by[0]")
    assert info.value.violations[0].field == "order_by[0]"


def test_a_missing_tag_fails_every_comparison_in_sql_but_the_prompt_tag_reads_false() -> None:
    p = Params()
    sql = compile_filter(parse_filter("tags.k != 'v' AND NOT tags.j = 'w'", MODELS), MODEL_COLUMNS, p)  # type: ignore[arg-type]
    assert "COALESCE((m.tags ->> $1::text) <> $2::text, false)" in sql  # MLflow: only rows tagged k
    assert "NOT (COALESCE((m.tags ->> $3::text) = $4::text, false))" in sql
    assert p.values == ["k", "v", "j", "w"]
    p = Params()
    prompt = parse_filter("tags.`mlflow.prompt.is_prompt` != 'true'", MODELS)
    sql = compile_filter(prompt, MODEL_COLUMNS, p)  # type: ignore[arg-type]
    assert sql == "COALESCE(COALESCE((m.tags ->> $1::text), $2::text) <> $3::text, false)"
    assert p.values == ["mlflow.prompt.is_prompt", "false", "true"]


def test_the_evaluator_finds_only_rows_with_the_tag_for_not_equal_and_not_in() -> None:
    for text in ("tags.k != 'v'", "tags.k NOT IN ('v')", "tags.k LIKE '%'"):
        expr = parse_filter(text, LOGGED_MODELS)
        assert matches(expr, {}, {"k": "w"}) and not matches(expr, {}, {}), text
    assert not matches(parse_filter("tags.k != 'v'", LOGGED_MODELS), {}, {"k": "v"})
    assert matches(parse_filter("tags.k IS NULL", LOGGED_MODELS), {}, {})
    never = parse_filter("tags.`mlflow.prompt.is_prompt` = 'false'", LOGGED_MODELS)
    assert matches(never, {}, {}) and not matches(never, {}, {"mlflow.prompt.is_prompt": "true"})
    assert not matches(parse_filter("tags.`mlflow.prompt.is_prompt` IS NOT NULL", LOGGED_MODELS), {}, {})


def test_the_evaluator_follows_the_same_rules_over_rows() -> None:
    expr = parse_filter("(name LIKE 'churn%' OR tags.team = 'nlp') AND NOT status = 'FAILED'", LOGGED_MODELS)
    assert matches(expr, {"name": "churn-2", "status": "READY"}, {})
    assert matches(expr, {"name": "fraud", "status": "READY"}, {"team": "nlp"})
    assert not matches(expr, {"name": "churn-2", "status": "FAILED"}, {})
    prompt = parse_filter("tags.`mlflow.prompt.is_prompt` != 'true'", LOGGED_MODELS)
    assert matches(prompt, {}, {}) and not matches(prompt, {}, {"mlflow.prompt.is_prompt": "true"})
    assert matches(parse_filter("name ILIKE 'CH%'", LOGGED_MODELS), {"name": "churn"}, {})
    assert matches(None, {}, {})


def test_mlflow_source_path_becomes_the_source_tag_and_other_filters_pass_unchanged() -> None:
    text = "name = 'a' AND (source_path = 'runs:/r/model' OR version_number > 2)"
    assert mlflow_version_filter(text) == (
        "attributes.name = 'a' AND (tags.modelog.mlflow.source = 'runs:/r/model' OR attributes.version > 2)"
    )
    assert mlflow_version_filter("run_id = 'r'") == "run_id = 'r'"
    with pytest.raises(InvalidArgument):
        mlflow_version_filter("source_path >> 'x'")


def test_pages_cover_every_item_once_and_a_token_is_bound_to_its_search() -> None:
    items = list(range(25))
    seen, token = [], ""
    while True:
        got, token = page(items, 10, token, scope=["q"])
        seen.extend(got)
        if not token:
            break
    assert seen == items
    _, first = page(items, 10, "", scope=["q"])
    with pytest.raises(InvalidArgument):
        page(items, 10, first, scope=["another search"])
    with pytest.raises(InvalidArgument):
        page(items, 10, "not-a-token", scope=["q"])


def test_the_stock_client_s_prompt_clause_applies_to_the_whole_of_the_user_s_filter() -> None:
    from modelog_services.gateway.mlflow.search import client_filter

    sent = "name = 'a' OR name = 'b' AND tag.`mlflow.prompt.is_prompt` != 'true'"
    assert client_filter(sent) == "(name = 'a' OR name = 'b') AND tag.`mlflow.prompt.is_prompt` != 'true'"
    alone = "tag.`mlflow.prompt.is_prompt` != 'true'"
    assert client_filter(alone) == alone
    assert client_filter("name = 'a'") == "name = 'a'"
