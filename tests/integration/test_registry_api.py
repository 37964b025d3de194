"""The Registry gRPC API in-process on a real PostgreSQL, calling the real tracking and artifacts APIs:
the full path from a run to an approved Production version, lineage, history, refusals that write
nothing, idempotent retries, and rebuild == live."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import grpc
import pytest

from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog_platform.grpc_errors import status_details
from modelog_services.registry.projections import RegistryView
from tests.contracts import assert_rebuild_equals_live
from tests.integration.test_registry_stack import RegistryStack, stack

pytestmark = pytest.mark.asyncio
__all__ = ["stack"]

STAGING, PRODUCTION, ARCHIVED = pb.STAGE_STAGING, pb.STAGE_PRODUCTION, pb.STAGE_ARCHIVED


def ref(model: str, version: int = 0, alias: str = "") -> pb.VersionRef:
    return pb.VersionRef(model=model, version=version, alias=alias)


async def refused(
    stack: RegistryStack, code: grpc.StatusCode, call: Callable[[], Awaitable[object]], text: str = ""
) -> grpc.aio.AioRpcError:
    """Makes `call()`, asserts it fails with `code` (and `text`), and that the registry log did not
    move. The head is read before the call is made: a grpc.aio call starts as soon as it exists."""
    head = await stack.head()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call()
    assert info.value.code() == code, info.value.details()
    assert text in (info.value.details() or ""), info.value.details()
    assert await stack.head() == head, "a refused call wrote to the registry log"
    return info.value


async def test_a_run_becomes_an_approved_production_version_with_lineage_and_history(
    stack: RegistryStack,
) -> None:
    for name in ("alice", "bob", "carol"):
        await stack.user(name, "member")
    run_id = await stack.trained_run(params={"lr": "0.01", "depth": "6"})
    model_artifact = await stack.model_artifact(run_id)

    created = await stack.api.CreateModelVersion(
        pb.CreateModelVersionRequest(
            model="churn",
            artifact=pb.ArtifactRef(name=model_artifact.name, version=model_artifact.version),
            create_model=True,
            framework="sklearn",
            description="gradient boosting, **v1**",
        ),
        metadata=stack.md("alice"),
    )
    v = created.version
    assert (v.model, v.version, v.stage, v.status) == ("churn", 1, pb.STAGE_NONE, pb.VERSION_STATUS_READY)
    assert v.run_id == run_id  # taken from the artifact version, which names its run
    assert v.manifest_digest == model_artifact.manifest_digest and v.created_by == "alice"

    # Policy: Production needs two approvals from members other than the requester.
    policy = pb.ModelPolicy(
        production=pb.StagePolicy(approvals_required=2, approver_role="member", from_stages=[STAGING])
    )
    await stack.api.SetPolicy(pb.SetPolicyRequest(name="churn", policy=policy), metadata=stack.md())

    await stack.promote("churn", 1, STAGING, "alice")  # no approval needed: moves at once
    requested = await stack.api.RequestTransition(
        pb.RequestTransitionRequest(ref=ref("churn", 1), stage=PRODUCTION, comment="beats baseline on AUC"),
        metadata=stack.md("alice"),
    )
    assert requested.request.status == pb.REQUEST_STATUS_OPEN and requested.request.approvals_required == 2
    assert requested.version.open_request.request_id == requested.request.request_id

    await refused(
        stack,
        grpc.StatusCode.PERMISSION_DENIED,
        lambda: stack.api.ApproveTransition(
            pb.ApproveTransitionRequest(ref=ref("churn", 1)), metadata=stack.md("alice")
        ),
        "'alice' opened request",
    )
    first = await stack.api.ApproveTransition(
        pb.ApproveTransitionRequest(ref=ref("churn", 1), comment="checked the eval"), metadata=stack.md("bob")
    )
    assert first.version.stage == STAGING and [a.by for a in first.request.approvals] == ["bob"]
    second = await stack.api.ApproveTransition(
        pb.ApproveTransitionRequest(ref=ref("churn", 1)), metadata=stack.md("carol")
    )
    assert second.version.stage == PRODUCTION and second.request.status == pb.REQUEST_STATUS_APPROVED
    assert [a.by for a in second.request.approvals] == [
        "bob",
        "carol",
    ] and second.request.closed_by == "carol"

    await stack.api.SetAlias(
        pb.SetAliasRequest(model="churn", alias="champion", version=1), metadata=stack.md("bob")
    )
    by_alias = (
        await stack.api.GetByAlias(pb.GetByAliasRequest(model="churn", alias="champion"), metadata=stack.md())
    ).version
    assert (by_alias.version, by_alias.stage, list(by_alias.aliases)) == (1, PRODUCTION, ["champion"])

    lineage = (
        await stack.api.GetLineage(
            pb.GetLineageRequest(ref=ref("churn", alias="champion")), metadata=stack.md()
        )
    ).lineage
    assert lineage.run_id == run_id and lineage.run_status == "FINISHED"
    assert dict(lineage.params) == {"lr": "0.01", "depth": "6"}
    assert {m.key: (m.last, m.last_step, m.max) for m in lineage.metrics} == {
        "auc": (0.83, 1, 0.83),
        "loss": (0.4, 1, 0.4),
    }
    assert [(d.name, d.context, d.source) for d in lineage.datasets] == [
        ("customers", "training", "s3://bucket/customers")
    ]
    assert lineage.manifest_digest == model_artifact.manifest_digest and lineage.artifact_kind == "model"
    assert (lineage.artifact_name, lineage.artifact_version, lineage.file_count) == ("churn-model", 1, 2)

    history = (await stack.api.History(pb.HistoryRequest(model="churn"), metadata=stack.md())).entries
    steps = [(e.type, e.actor) for e in history]
    assert steps == [
        ("ModelRegistered", "alice"),
        ("ModelVersionCreated", "alice"),
        ("PolicySet", "admin"),
        ("TransitionRequested", "alice"),
        ("VersionStageChanged", "alice"),
        ("TransitionRequested", "alice"),
        ("TransitionApproved", "bob"),
        ("TransitionApproved", "carol"),
        ("VersionStageChanged", "carol"),
        ("AliasSet", "bob"),
    ]
    summaries = [e.summary for e in history]
    assert (
        "alice requested Production for version 1 (needs 2 approval(s)): 'beats baseline on AUC'" in summaries
    )
    assert any(s.startswith("bob approved request") and "checked the eval" in s for s in summaries)
    assert "version 1 moved from Staging to Production, on carol's decision" in summaries
    assert [e.position for e in history] == sorted(e.position for e in history)


async def test_approving_a_new_production_version_archives_the_previous_one_atomically(
    stack: RegistryStack,
) -> None:
    await stack.user("bob", "member")
    for n in (1, 2):
        await stack.version("fraud")
        await stack.promote("fraud", n, STAGING)
    await stack.promote("fraud", 1, PRODUCTION, "admin", "bob")
    await stack.api.RequestTransition(
        pb.RequestTransitionRequest(ref=ref("fraud", 2), stage=PRODUCTION), metadata=stack.md()
    )
    head = await stack.head()
    approved = await stack.api.ApproveTransition(
        pb.ApproveTransitionRequest(ref=ref("fraud", 2)), metadata=stack.md("bob")
    )
    assert list(approved.archived_versions) == [1]
    events = [
        e
        for e in await stack.platform.stores["registry"].read_log(head + 1)
        if e.stream_id.startswith("model-")
    ]
    assert [(e.type, json.loads(e.payload_json).get("version")) for e in events] == [
        ("TransitionApproved", 2),
        ("VersionStageChanged", 1),
        ("VersionStageChanged", 2),
    ]
    assert (
        len({e.position for e in events}) == 3 and events[-1].position - events[0].position == 2
    )  # one commit
    model = (await stack.api.GetModel(pb.GetModelRequest(name="fraud"), metadata=stack.md())).model
    assert list(model.production_versions) == [2]
    old = (
        await stack.api.GetModelVersion(pb.GetModelVersionRequest(ref=ref("fraud", 1)), metadata=stack.md())
    ).version
    assert old.stage == ARCHIVED


async def test_an_unknown_run_or_artifact_version_is_not_found_and_writes_nothing(
    stack: RegistryStack,
) -> None:
    run_id = await stack.trained_run()
    artifact = await stack.model_artifact(run_id)
    good = pb.ArtifactRef(name=artifact.name, version=artifact.version)
    await refused(
        stack,
        grpc.StatusCode.NOT_FOUND,
        lambda: stack.api.CreateModelVersion(
            pb.CreateModelVersionRequest(model="m", run_id="nope123", artifact=good, create_model=True),
            metadata=stack.md(),
        ),
        "run 'nope123' does not exist",
    )
    await refused(
        stack,
        grpc.StatusCode.NOT_FOUND,
        lambda: stack.api.CreateModelVersion(
            pb.CreateModelVersionRequest(
                model="m",
                run_id=run_id,
                artifact=pb.ArtifactRef(name=artifact.name, version=99),
                create_model=True,
            ),
            metadata=stack.md(),
        ),
        "artifact churn-model:v99 does not exist",
    )
    other_run = await stack.trained_run()
    await refused(
        stack,
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: stack.api.CreateModelVersion(
            pb.CreateModelVersionRequest(model="m", run_id=other_run, artifact=good, create_model=True),
            metadata=stack.md(),
        ),
        f"produced by run '{run_id}'",
    )
    dataset = await stack.model_artifact(run_id, name="customers", kind="dataset")
    await refused(
        stack,
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: stack.api.CreateModelVersion(
            pb.CreateModelVersionRequest(
                model="m", artifact=pb.ArtifactRef(name=dataset.name, version=1), create_model=True
            ),
            metadata=stack.md(),
        ),
        "is a dataset",
    )
    await refused(
        stack,
        grpc.StatusCode.NOT_FOUND,
        lambda: stack.api.GetModel(pb.GetModelRequest(name="m"), metadata=stack.md()),
        "no model named 'm'",
    )


async def test_forbidden_moves_are_refused_with_clear_errors_and_write_nothing(stack: RegistryStack) -> None:
    await stack.user("vic", "viewer")
    await stack.user("bob", "member")
    await stack.version("churn")
    await stack.version("churn")
    await stack.api.DeprecateVersion(
        pb.DeprecateVersionRequest(ref=ref("churn", 2), reason="bad"), metadata=stack.md()
    )
    cases = [
        (
            lambda: stack.api.SetAlias(
                pb.SetAliasRequest(model="churn", alias="champion", version=2), metadata=stack.md()
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "deprecated; an alias cannot point at it",
        ),
        (
            lambda: stack.api.SetAlias(
                pb.SetAliasRequest(model="churn", alias="Champion!", version=1), metadata=stack.md()
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "alias",
        ),
        (
            lambda: stack.api.SetAlias(
                pb.SetAliasRequest(model="churn", alias="champion", version=9), metadata=stack.md()
            ),
            grpc.StatusCode.NOT_FOUND,
            "no version 9",
        ),
        (
            lambda: stack.api.RequestTransition(
                pb.RequestTransitionRequest(ref=ref("churn", 1), stage=PRODUCTION), metadata=stack.md()
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "allows Production only from Staging",
        ),
        (
            lambda: stack.api.SetAlias(
                pb.SetAliasRequest(model="churn", alias="champion", version=1), metadata=stack.md("vic")
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "it needs EDIT there and holds READ",
        ),
        (
            lambda: stack.api.SetPolicy(
                pb.SetPolicyRequest(name="churn", policy=pb.ModelPolicy(max_production_versions=2)),
                metadata=stack.md("bob"),
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "it needs MANAGE there and holds EDIT, READ",
        ),
        (
            lambda: stack.api.ApproveTransition(
                pb.ApproveTransitionRequest(ref=ref("churn", 1)), metadata=stack.md("bob")
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "has no open transition request",
        ),
        (
            lambda: stack.api.CreateModel(pb.CreateModelRequest(name="churn"), metadata=stack.md()),
            grpc.StatusCode.ALREADY_EXISTS,
            "a model named 'churn' already exists",
        ),
        (
            lambda: stack.api.CreateModel(pb.CreateModelRequest(name="a/b"), metadata=stack.md()),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a model name",
        ),
    ]
    for call, code, text in cases:
        await refused(stack, code, call, text)
    err = await refused(
        stack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stack.api.SetAlias(
            pb.SetAliasRequest(model="churn", alias="v2", version=1), metadata=stack.md()
        ),
    )
    assert status_details(err)["field_violations"] == [
        ("alias", "'v2' looks like a version number; pick a name such as 'champion'")
    ]
    await stack.promote("churn", 1, STAGING)
    await stack.promote("churn", 1, PRODUCTION, "admin", "bob")
    await refused(
        stack,
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: stack.api.DeleteModel(pb.DeleteModelRequest(name="churn"), metadata=stack.md()),
        "version 1 in Production; archive it before deleting the model",
    )


async def test_retried_calls_return_the_first_result_and_write_once(stack: RegistryStack) -> None:
    await stack.user("bob", "member")
    run_id = await stack.trained_run()
    artifact = await stack.model_artifact(run_id)
    request = pb.CreateModelVersionRequest(
        model="churn",
        artifact=pb.ArtifactRef(name=artifact.name, version=artifact.version),
        create_model=True,
    )
    first = await stack.api.CreateModelVersion(request, metadata=stack.md(key="create-1"))
    head = await stack.head()
    again = await stack.api.CreateModelVersion(request, metadata=stack.md(key="create-1"))
    assert again.version == first.version and await stack.head() == head
    await stack.promote("churn", 1, STAGING)
    ask = pb.RequestTransitionRequest(ref=ref("churn", 1), stage=PRODUCTION)
    r1 = await stack.api.RequestTransition(ask, metadata=stack.md(key="ask-1"))
    r2 = await stack.api.RequestTransition(ask, metadata=stack.md(key="ask-1"))
    assert r1.request.request_id == r2.request.request_id
    approve = pb.ApproveTransitionRequest(ref=ref("churn", 1))
    a1 = await stack.api.ApproveTransition(approve, metadata=stack.md("bob", key="ok-1"))
    head = await stack.head()
    a2 = await stack.api.ApproveTransition(
        approve, metadata=stack.md("bob", key="ok-1")
    )  # not "already approved"
    assert a1.version.stage == a2.version.stage == PRODUCTION and await stack.head() == head
    types = [e.type for e in await stack.stream("churn")]
    assert types.count("ModelVersionCreated") == 1 and types.count("TransitionRequested") == 2
    assert types.count("TransitionApproved") == 1


async def test_models_and_versions_are_searchable_by_name_tag_stage_alias_and_run(
    stack: RegistryStack,
) -> None:
    run_a = await stack.trained_run()
    await stack.version("churn", run_id=run_a, tags={"team": "growth"})
    await stack.version("churn")
    await stack.version("fraud", tags={"team": "risk"})
    await stack.api.SetModelTags(
        pb.SetModelTagsRequest(name="fraud", tags={"domain": "payments"}), metadata=stack.md()
    )
    await stack.promote("churn", 2, STAGING)
    await stack.api.SetAlias(
        pb.SetAliasRequest(model="churn", alias="challenger", version=2), metadata=stack.md()
    )

    async def versions(**q: object) -> list[tuple[str, int]]:
        resp = await stack.api.SearchModelVersions(pb.SearchModelVersionsRequest(**q), metadata=stack.md())  # type: ignore[arg-type]
        return sorted((v.model, v.version) for v in resp.versions)

    assert await versions(model="churn") == [("churn", 1), ("churn", 2)]
    assert await versions(tags={"team": "growth"}) == [("churn", 1)]
    assert await versions(stage=STAGING) == [("churn", 2)]
    assert await versions(alias="challenger") == [("churn", 2)]
    assert await versions(run_id=run_a) == [("churn", 1)]
    page = await stack.api.SearchModelVersions(
        pb.SearchModelVersionsRequest(page_size=2), metadata=stack.md()
    )
    rest = await stack.api.SearchModelVersions(
        pb.SearchModelVersionsRequest(page_size=2, page_token=page.next_page_token), metadata=stack.md()
    )
    assert len(page.versions) == 2 and len(rest.versions) == 1 and not rest.next_page_token
    models = await stack.api.SearchModels(
        pb.SearchModelsRequest(tags={"domain": "payments"}), metadata=stack.md()
    )
    assert [m.name for m in models.models] == ["fraud"]
    assert [
        m.name
        for m in (
            await stack.api.SearchModels(pb.SearchModelsRequest(name_contains="HUR"), metadata=stack.md())
        ).models
    ] == ["churn"]


async def test_a_rename_frees_the_old_name_and_history_keeps_both(stack: RegistryStack) -> None:
    await stack.api.CreateModel(pb.CreateModelRequest(name="churn"), metadata=stack.md())
    await stack.api.RenameModel(pb.RenameModelRequest(name="churn", new_name="churn-v2"), metadata=stack.md())
    await stack.api.CreateModel(
        pb.CreateModelRequest(name="churn"), metadata=stack.md()
    )  # the old name is free
    await refused(
        stack,
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: stack.api.RenameModel(
            pb.RenameModelRequest(name="churn", new_name="churn-v2"), metadata=stack.md()
        ),
        "already exists",
    )
    history = await stack.api.History(pb.HistoryRequest(model="churn-v2"), metadata=stack.md())
    assert [e.summary for e in history.entries] == [
        "admin registered model 'churn'",
        "admin renamed the model from 'churn' to 'churn-v2'",
    ]


async def test_rebuilding_the_registry_view_from_position_zero_equals_the_live_one(
    stack: RegistryStack,
) -> None:
    await stack.user("bob", "member")
    for n in (1, 2, 3):
        await stack.version("churn", tags={"n": str(n)})
        await stack.promote("churn", n, STAGING)
    await stack.promote("churn", 1, PRODUCTION, "admin", "bob")
    await stack.promote("churn", 2, PRODUCTION, "admin", "bob")
    await stack.api.SetAlias(
        pb.SetAliasRequest(model="churn", alias="champion", version=2), metadata=stack.md()
    )
    await stack.api.SetAlias(
        pb.SetAliasRequest(model="churn", alias="champion", version=3), metadata=stack.md()
    )
    await stack.api.RequestTransition(
        pb.RequestTransitionRequest(ref=ref("churn", 3), stage=PRODUCTION), metadata=stack.md()
    )
    await stack.api.RejectTransition(
        pb.RejectTransitionRequest(ref=ref("churn", 3), comment="no"), metadata=stack.md("bob")
    )
    await stack.api.AnnotateVersion(
        pb.AnnotateVersionRequest(
            ref=ref("churn", 1), description="old", tags={"x": "y"}, delete_tag_keys=["n"]
        ),
        metadata=stack.md(),
    )
    await stack.version("churn")
    await stack.api.DeleteModelVersion(pb.DeleteModelVersionRequest(ref=ref("churn", 4)), metadata=stack.md())
    await stack.version("other")
    await stack.api.DeleteModel(pb.DeleteModelRequest(name="other"), metadata=stack.md())

    await assert_rebuild_equals_live(stack.platform.pool, RegistryView(), stack.platform.stores)
    tracking_runs = await stack.tracking.SearchRuns(tpb.SearchRunsRequest(), metadata=stack.md())
    assert len(tracking_runs.runs) >= 4  # the registry read runs over gRPC; it never wrote tracking's tables
