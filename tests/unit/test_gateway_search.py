"""MLflow's registry search grammar as the gateway evaluates it: clauses, matching, paging."""

from __future__ import annotations

import pytest

from eventlog.errors import InvalidArgument
from modelog_services.gateway.mlflow.search import matches, page, parse_filter

ATTRS = {"name": "string", "version_number": "number"}


def test_and_joined_comparisons_on_attributes_and_tags() -> None:
    clauses = parse_filter("name LIKE 'churn%' AND tags.team = 'nlp' AND version_number > 1", ATTRS)
    assert matches(clauses, {"name": "churn-v2", "version_number": 3}, {"team": "nlp"})
    assert not matches(clauses, {"name": "churn-v2", "version_number": 1}, {"team": "nlp"})
    assert not matches(clauses, {"name": "fraud", "version_number": 3}, {"team": "nlp"})
    # what the stock client appends to every model search: a missing tag is "not equal"
    prompt = parse_filter("name = 'a' AND tag.`mlflow.prompt.is_prompt` != 'true'", ATTRS)
    assert matches(prompt, {"name": "a", "version_number": 1}, {})
    assert not matches(prompt, {"name": "a", "version_number": 1}, {"mlflow.prompt.is_prompt": "true"})


def test_ilike_and_in() -> None:
    assert matches(parse_filter("name ILIKE 'CH%'", ATTRS), {"name": "churn", "version_number": 1}, {})
    assert matches(parse_filter("name IN ('a', 'churn')", ATTRS), {"name": "churn", "version_number": 1}, {})


@pytest.mark.parametrize("bad", ["name = ", "name >>> 'a'", "nosuch = 'a'", "name = 'a' OR name = 'b'"])
def test_malformed_filters_are_refused_naming_the_filter(bad: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_filter(bad, ATTRS)
    assert info.value.violations[0].field == "filter"


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
