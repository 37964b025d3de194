"""Requests built to exhaust the server: a message above the receive limit, JSON nested a hundred
thousand levels deep, maps and repeated fields with millions of entries. Each is refused cleanly
(RESOURCE_EXHAUSTED or INVALID_ARGUMENT naming the field) or kept as the opaque text it is, nothing
is written by a refusal, and the server answers the next call."""

from __future__ import annotations

import base64

import grpc
import pytest

from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.identity.v1 import identity_pb2 as ipb
from modelog._gen.registry.v1 import registry_pb2 as rpb
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog_platform.app import MAX_RECEIVE_BYTES
from tests.security.stackfix import SecurityStack, invalid, refused

pytestmark = pytest.mark.asyncio

DEEP = 100_000


async def _still_serving(stack: SecurityStack) -> None:
    who = await stack.api.identity.WhoAmI(ipb.WhoAmIRequest(), metadata=stack.md())
    assert who.actor == "admin"


async def test_a_message_above_the_receive_limit_is_resource_exhausted_and_the_server_keeps_serving(
    stack: SecurityStack,
) -> None:
    run = await stack.run()
    api, md = stack.api, stack.md()
    huge = "v" * (MAX_RECEIVE_BYTES + 1024)
    async with stack.writes_nothing():
        said = await refused(
            api.tracking.LogParams(
                tpb.LogParamsRequest(run_id=run.info.run_id, params={"k": huge}), metadata=md
            ),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        )
        assert "larger than max" in said
        blob = apb.UploadBlob(digest="0" * 64, data=huge.encode())
        upload = api.artifacts.Upload(
            iter([apb.UploadRequest(batch=apb.UploadBatch(blobs=[blob]))]), metadata=md
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in upload:
                pass
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await _still_serving(stack)
    await api.tracking.LogParams(tpb.LogParamsRequest(run_id=run.info.run_id, params={"k": "v"}), metadata=md)


async def test_json_nested_a_hundred_thousand_deep_is_refused_where_parsed_and_kept_where_opaque(
    stack: SecurityStack,
) -> None:
    api, md = stack.api, stack.md()
    run = await stack.run()
    run_id = run.info.run_id
    digest = await stack.blob(b"weights")
    entry = apb.ManifestEntry(path="model.bin", digest=digest, size=7)
    await api.artifacts.CommitVersion(
        apb.CommitVersionRequest(name="model", entries=[entry], run_id=run_id), metadata=md
    )

    # A model signature is parsed: nested too deep, it is not JSON the server takes. (The first
    # version, a plain one, also has the registry fetch its token for calling the other services.)
    model = rpb.ArtifactRef(name="model")
    await api.registry.CreateModelVersion(
        rpb.CreateModelVersionRequest(model="scorer", artifact=model, create_model=True), metadata=md
    )
    for signature in ("[" * 60_000, '{"a":' * 10_000 + "1" + "}" * 10_000, "[" * 5_000 + "]" * 5_000):
        async with stack.writes_nothing():
            said = await invalid(
                api.registry.CreateModelVersion(
                    rpb.CreateModelVersionRequest(model="scorer", artifact=model, signature=signature),
                    metadata=md,
                ),
                "signature",
            )
        assert "nests deeper" in said, said

    # Page tokens are JSON inside base64: a forged one is a bad token, not an internal error (the
    # lineage timeline's, read from projections this stack does not run: tests/unit/test_inputs.py).
    forged = base64.urlsafe_b64encode(b"[" * DEEP).decode()
    pages = {
        "SearchModels": api.registry.SearchModels(rpb.SearchModelsRequest(page_token=forged), metadata=md),
        "SearchModelVersions": api.registry.SearchModelVersions(
            rpb.SearchModelVersionsRequest(page_token=forged), metadata=md
        ),
        "ListExperiments": api.tracking.ListExperiments(
            tpb.ListExperimentsRequest(page_token=forged), metadata=md
        ),
        "SearchRuns": api.tracking.SearchRuns(
            tpb.SearchRunsRequest(experiment_ids=[run.info.experiment_id], page_token=forged), metadata=md
        ),
    }
    for method, call in pages.items():
        try:
            await invalid(call, "page_token")
        except AssertionError as exc:
            raise AssertionError(f"{method}: {exc}") from None

    # A filter is parsed by recursive descent, bounded well below the stack.
    said = await invalid(
        api.tracking.SearchRuns(
            tpb.SearchRunsRequest(experiment_ids=[run.info.experiment_id], filter="(" * DEEP), metadata=md
        ),
        "filter",
    )
    assert "nests deeper than" in said

    # Dataset schema and profile are opaque documents, as in MLflow: kept as sent, given back as sent.
    schema, profile = "[" * DEEP, '{"a":' * (DEEP // 5)
    dataset = tpb.DatasetInput(name="train", digest="d1", dataset_schema=schema, dataset_profile=profile)
    await api.tracking.LogDatasetInput(
        tpb.LogDatasetInputRequest(run_id=run_id, dataset=dataset), metadata=md
    )
    got = await api.tracking.GetRun(tpb.GetRunRequest(run_id=run_id), metadata=md)
    (kept,) = got.run.datasets
    assert (kept.dataset_schema, kept.dataset_profile) == (schema, profile)
    await _still_serving(stack)


@pytest.mark.slow
async def test_maps_and_repeated_fields_with_millions_of_entries_are_refused_naming_the_field(
    stack: SecurityStack,
) -> None:
    api, md = stack.api, stack.md()
    run = await stack.run()
    run_id = run.info.run_id
    million = {f"k{i}": "v" for i in range(1_000_000)}
    points = 3_000_000
    batch = tpb.MetricBatch(
        run_id=run_id,
        keys=["loss"] * points,
        values=[0.5] * points,
        steps=[0] * points,
        timestamps_ms=[1] * points,
    )
    attempts = {
        "params": api.tracking.LogParams(tpb.LogParamsRequest(run_id=run_id, params=million), metadata=md),
        "tags": api.tracking.SetTags(tpb.SetTagsRequest(run_id=run_id, tags=million), metadata=md),
        "metrics": api.tracking.LogMetricsBatch(batch, metadata=md),
        "digests": api.artifacts.HaveBlobs(apb.HaveBlobsRequest(digests=["0" * 64] * 900_000), metadata=md),
        "run_ids": api.tracking.CompareRuns(
            tpb.CompareRunsRequest(run_ids=[run_id] * 1_000_000), metadata=md
        ),
    }
    for field, call in attempts.items():
        async with stack.writes_nothing():
            said = await invalid(call, field)
        assert "limit" in said or "at most" in said or "1 to 100" in said, (field, said)
    # A search over a million experiment ids is a large question, not a fatal one.
    await api.tracking.SearchRuns(
        tpb.SearchRunsRequest(experiment_ids=[f"e{i}" for i in range(1_000_000)]), metadata=md
    )
    await _still_serving(stack)
