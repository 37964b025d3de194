"""SearchModels and SearchModelVersions with the shared filter grammar on the real stack: OR, NOT,
tags, order_by, pages bound to their query, and bad filters refused naming the column."""

from __future__ import annotations

import grpc
import pytest

from modelog._gen.registry.v1 import registry_pb2 as pb
from tests.integration.test_registry_api import refused
from tests.integration.test_registry_stack import RegistryStack, stack

pytestmark = pytest.mark.asyncio
__all__ = ["stack"]


async def _seed(stack: RegistryStack) -> str:
    run = await stack.trained_run()
    await stack.version("churn", run_id=run, tags={"team": "growth"})
    await stack.version("churn", tags={"team": "risk"})
    await stack.version("churn")
    await stack.version("fraud", tags={"team": "risk"})
    await stack.version("forecast")
    for name, tags in (("churn", {"domain": "retail"}), ("fraud", {"domain": "payments"})):
        await stack.api.SetModelTags(pb.SetModelTagsRequest(name=name, tags=tags), metadata=stack.md())
    await stack.promote("churn", 2, pb.STAGE_STAGING)
    return run


async def test_models_filter_with_or_not_and_tags_in_the_order_asked_for(stack: RegistryStack) -> None:
    await _seed(stack)

    async def names(flt: str, *order: str) -> list[str]:
        req = pb.SearchModelsRequest(filter=flt, order_by=list(order))
        return [m.name for m in (await stack.api.SearchModels(req, metadata=stack.md())).models]

    assert await names("name LIKE 'f%'", "name ASC") == ["forecast", "fraud"]
    assert await names("name = 'churn' OR tags.domain = 'payments'", "name DESC") == ["fraud", "churn"]
    assert await names("NOT tags.domain = 'retail'", "name ASC") == ["forecast", "fraud"]
    assert await names("tags.domain != 'retail'", "name ASC") == ["fraud"]  # MLflow: tagged, another value
    assert await names("tags.domain NOT IN ('retail')", "name ASC") == ["fraud"]
    assert await names("tags.domain IS NULL") == ["forecast"]
    assert await names("", "creation_timestamp ASC") == ["churn", "fraud", "forecast"]
    assert await names("") == ["forecast", "fraud", "churn"]  # newest first
    # the old fields still narrow, combined with the filter by AND
    req = pb.SearchModelsRequest(name_contains="R", filter="NOT name = 'churn'", order_by=["name"])
    assert [m.name for m in (await stack.api.SearchModels(req, metadata=stack.md())).models] == [
        "forecast",
        "fraud",
    ]


async def test_versions_filter_by_attributes_and_tags_and_page_in_order(stack: RegistryStack) -> None:
    run = await _seed(stack)

    async def found(flt: str, *order: str) -> list[tuple[str, int]]:
        req = pb.SearchModelVersionsRequest(filter=flt, order_by=list(order))
        return [
            (v.model, v.version)
            for v in (await stack.api.SearchModelVersions(req, metadata=stack.md())).versions
        ]

    assert await found("name = 'churn' AND version_number > 1", "version DESC") == [
        ("churn", 3),
        ("churn", 2),
    ]
    assert await found("tags.team = 'risk' OR run_id = '" + run + "'", "name", "version") == [
        ("churn", 1),
        ("churn", 2),
        ("fraud", 1),
    ]
    assert await found("current_stage = 'Staging'") == [("churn", 2)]
    assert await found("NOT name IN ('churn', 'fraud')") == [("forecast", 1)]

    seen: list[tuple[str, int]] = []
    req = pb.SearchModelVersionsRequest(
        filter="name != 'forecast'", order_by=["name ASC", "version ASC"], page_size=2
    )
    while True:
        got = await stack.api.SearchModelVersions(req, metadata=stack.md())
        seen.extend((v.model, v.version) for v in got.versions)
        if not got.next_page_token:
            break
        req.page_token = got.next_page_token
    assert seen == [("churn", 1), ("churn", 2), ("churn", 3), ("fraud", 1)]

    first = await stack.api.SearchModelVersions(
        pb.SearchModelVersionsRequest(filter="name != 'forecast'", page_size=2), metadata=stack.md()
    )
    other = pb.SearchModelVersionsRequest(
        filter="name = 'churn'", page_size=2, page_token=first.next_page_token
    )
    await refused(
        stack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stack.api.SearchModelVersions(other, metadata=stack.md()),
        "page_token",
    )


async def test_a_bad_filter_or_order_is_invalid_argument_naming_the_column(stack: RegistryStack) -> None:
    await stack.version("churn")
    bad_model = pb.SearchModelsRequest(filter="name = 'churn' AND metrics.acc > 1")
    err = await refused(
        stack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stack.api.SearchModels(bad_model, metadata=stack.md()),
        "unknown prefix 'metrics'",
    )
    assert "column 20" in (err.details() or "")
    bad_version = pb.SearchModelVersionsRequest(filter="current_stage = 'Live'")
    await refused(
        stack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stack.api.SearchModelVersions(bad_version, metadata=stack.md()),
        "'Live' is not a model version current_stage",
    )
    bad_order = pb.SearchModelsRequest(order_by=["tags.team DESC"])
    await refused(
        stack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stack.api.SearchModels(bad_order, metadata=stack.md()),
        "ordered by attributes only",
    )
