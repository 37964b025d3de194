"""ListExperiments with the shared filter grammar on the real stack: OR, NOT, tags, order_by, the
view, pages bound to their query, and bad filters refused naming the column."""

from __future__ import annotations

import grpc
import pytest

from modelog._gen.tracking.v1 import tracking_pb2 as pb
from tests.integration.test_tracking_api import TrackingStack, refused, tk

pytestmark = pytest.mark.asyncio
__all__ = ["tk"]


async def test_experiments_filter_with_or_not_and_tags_in_order_and_pages(tk: TrackingStack) -> None:
    for name, team in (("xs-alpha", "nlp"), ("xs-beta", "cv"), ("xs-gamma", "nlp"), ("xs-delta", "")):
        await tk.experiment(name, tags={"team": team} if team else {})
    gone = await tk.experiment("xs-omega", tags={"team": "nlp"})
    await tk.api.DeleteExperiment(
        pb.DeleteExperimentRequest(experiment_id=gone.experiment_id), metadata=tk.md()
    )

    async def names(flt: str, *order: str, view: int = pb.VIEW_TYPE_ACTIVE_ONLY) -> list[str]:
        req = pb.ListExperimentsRequest(filter=flt, order_by=list(order), view=view)
        return [e.name for e in (await tk.api.ListExperiments(req, metadata=tk.md())).experiments]

    assert await names("name LIKE 'xs-%' AND tags.team = 'nlp'", "name ASC") == ["xs-alpha", "xs-gamma"]
    assert await names("name = 'xs-beta' OR (name LIKE 'xs-%' AND NOT tags.team = 'nlp')", "name DESC") == [
        "xs-delta",
        "xs-beta",
    ]
    assert await names("name LIKE 'xs-%' AND tags.team IS NULL") == ["xs-delta"]
    # MLflow: != finds experiments tagged team with another value, not those without the tag
    assert await names("name LIKE 'xs-%' AND tags.team != 'nlp'") == ["xs-beta"]
    assert await names("name LIKE 'xs-%'") == ["xs-delta", "xs-gamma", "xs-beta", "xs-alpha"]  # newest first
    assert await names("name LIKE 'xs-%' AND tags.team = 'nlp'", "name", view=pb.VIEW_TYPE_ALL) == [
        "xs-alpha",
        "xs-gamma",
        "xs-omega",
    ]

    seen: list[str] = []
    req = pb.ListExperimentsRequest(filter="name ILIKE 'XS-%'", order_by=["name ASC"], page_size=3)
    while True:
        got = await tk.api.ListExperiments(req, metadata=tk.md())
        seen.extend(e.name for e in got.experiments)
        if not got.next_page_token:
            break
        req.page_token = got.next_page_token
    assert seen == ["xs-alpha", "xs-beta", "xs-delta", "xs-gamma"]

    first = await tk.api.ListExperiments(
        pb.ListExperimentsRequest(filter="name LIKE 'xs-%'", page_size=1), metadata=tk.md()
    )
    other = pb.ListExperimentsRequest(filter="name LIKE 'x%'", page_size=1, page_token=first.next_page_token)
    await refused(
        tk.api.ListExperiments(other, metadata=tk.md()), grpc.StatusCode.INVALID_ARGUMENT, "page_token"
    )


async def test_a_bad_experiment_filter_or_order_is_invalid_argument_naming_the_column(
    tk: TrackingStack,
) -> None:
    err = await refused(
        tk.api.ListExperiments(
            pb.ListExperimentsRequest(filter="name = 'a' AND params.lr = '1'"), metadata=tk.md()
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown prefix 'params'",
        "column 16",
    )
    assert err.details()
    await refused(
        tk.api.ListExperiments(pb.ListExperimentsRequest(order_by=["nosuch DESC"]), metadata=tk.md()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown attribute 'nosuch'",
    )
