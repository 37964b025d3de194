"""Projects and grants over the real gRPC surface: what a token may see and change follows its grants,
to it or to its groups; what it may not read does not exist for it; grants answer "as of"."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.identity.v1 import access_pb2 as xpb
from modelog._gen.registry.v1 import registry_pb2 as rpb
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from tests.security.stackfix import SecurityStack, heads, refused

pytestmark = pytest.mark.asyncio


def grant(principal: str, kind: str, scope: str, perm: str) -> xpb.GrantInfo:
    return xpb.GrantInfo(principal=principal, scope_kind=kind, scope=scope, permission=perm)


async def test_a_project_grant_decides_what_a_token_sees_and_changes(stack: SecurityStack) -> None:
    api, admin = stack.api, stack.md()
    await api.access.CreateProject(xpb.CreateProjectRequest(name="fraud"), metadata=admin)
    mine = await api.tracking.CreateExperiment(
        tpb.CreateExperimentRequest(name="fraud-xgb", project="fraud"), metadata=admin
    )
    other = await api.tracking.CreateExperiment(tpb.CreateExperimentRequest(name="churn"), metadata=admin)
    assert mine.experiment.project == "fraud" and other.experiment.project == "default"
    bob = stack.md(await stack.token("bob", "none"))

    # No grant yet: nothing exists for bob, and the answer for a real id equals that for a made-up one.
    listed = await api.tracking.ListExperiments(tpb.ListExperimentsRequest(), metadata=bob)
    assert list(listed.experiments) == []
    real = await refused(
        api.tracking.GetExperiment(
            tpb.GetExperimentRequest(experiment_id=other.experiment.experiment_id), metadata=bob
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    fake = await refused(
        api.tracking.GetExperiment(tpb.GetExperimentRequest(experiment_id="no-such-id"), metadata=bob),
        grpc.StatusCode.NOT_FOUND,
    )
    assert real.replace(other.experiment.experiment_id, "X") == fake.replace("no-such-id", "X")

    await api.access.AddGrant(
        xpb.AddGrantRequest(grant=grant("bob", "project", "fraud", "READ")), metadata=admin
    )
    listed = await api.tracking.ListExperiments(tpb.ListExperimentsRequest(), metadata=bob)
    assert [e.name for e in listed.experiments] == ["fraud-xgb"]
    before = await heads(stack.platform)
    start = tpb.StartRunRequest(experiment_id=mine.experiment.experiment_id)
    text = await refused(api.tracking.StartRun(start, metadata=bob), grpc.StatusCode.PERMISSION_DENIED)
    assert "needs EDIT" in text and "'fraud'" in text
    assert await heads(stack.platform) == before

    await api.access.AddGrant(
        xpb.AddGrantRequest(grant=grant("bob", "project", "fraud", "EDIT")), metadata=admin
    )
    run = await api.tracking.StartRun(start, metadata=bob)
    assert run.run.info.experiment_id == mine.experiment.experiment_id
    # Creating in a project needs EDIT there; bob has none in default.
    await refused(
        api.tracking.CreateExperiment(tpb.CreateExperimentRequest(name="sneaky"), metadata=bob),
        grpc.StatusCode.NOT_FOUND,
    )
    made = await api.tracking.CreateExperiment(
        tpb.CreateExperimentRequest(name="fraud-lgbm", project="fraud"), metadata=bob
    )
    assert made.experiment.project == "fraud"

    await api.access.RemoveGrant(
        xpb.RemoveGrantRequest(grant=grant("bob", "project", "fraud", "EDIT")), metadata=admin
    )
    await refused(api.tracking.StartRun(start, metadata=bob), grpc.StatusCode.PERMISSION_DENIED)


async def test_a_group_grant_on_one_experiment_reaches_its_members_only(stack: SecurityStack) -> None:
    api, admin = stack.api, stack.md()
    a = await api.tracking.CreateExperiment(tpb.CreateExperimentRequest(name="a"), metadata=admin)
    await api.tracking.CreateExperiment(tpb.CreateExperimentRequest(name="b"), metadata=admin)
    carol = stack.md(await stack.token("carol", "none"))
    dave = stack.md(await stack.token("dave", "none"))
    await api.access.AddGroupMember(xpb.GroupMemberRequest(group="analysts", member="carol"), metadata=admin)
    exp_id = a.experiment.experiment_id
    await api.access.AddGrant(
        xpb.AddGrantRequest(grant=grant("group:analysts", "experiment", exp_id, "READ")), metadata=admin
    )
    seen = await api.tracking.ListExperiments(tpb.ListExperimentsRequest(), metadata=carol)
    assert [e.name for e in seen.experiments] == ["a"]
    assert (
        list((await api.tracking.ListExperiments(tpb.ListExperimentsRequest(), metadata=dave)).experiments)
        == []
    )
    got = await api.tracking.GetExperiment(tpb.GetExperimentRequest(experiment_id=exp_id), metadata=carol)
    assert got.experiment.name == "a"
    await api.access.RemoveGroupMember(
        xpb.GroupMemberRequest(group="analysts", member="carol"), metadata=admin
    )
    await refused(
        api.tracking.GetExperiment(tpb.GetExperimentRequest(experiment_id=exp_id), metadata=carol),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_granting_needs_manage_on_the_scope_and_grants_answer_as_of(stack: SecurityStack) -> None:
    api, admin = stack.api, stack.md()
    await api.access.CreateProject(xpb.CreateProjectRequest(name="fraud"), metadata=admin)
    await api.registry.CreateModel(rpb.CreateModelRequest(name="scorer", project="fraud"), metadata=admin)
    erin = stack.md(await stack.token("erin", "none"))
    await stack.token("frank", "none")
    before_grants = Timestamp()
    before_grants.FromDatetime(datetime.now(UTC))
    approve = grant("frank", "model", "scorer", "APPROVE")
    # erin may read the project but not manage it: she cannot hand out rights there.
    await api.access.AddGrant(
        xpb.AddGrantRequest(grant=grant("erin", "project", "fraud", "READ")), metadata=admin
    )
    await refused(
        api.access.AddGrant(xpb.AddGrantRequest(grant=approve), metadata=erin),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await api.access.AddGrant(
        xpb.AddGrantRequest(grant=grant("erin", "model", "scorer", "MANAGE")), metadata=admin
    )
    assert (await api.access.AddGrant(xpb.AddGrantRequest(grant=approve), metadata=erin)).changed
    assert not (await api.access.AddGrant(xpb.AddGrantRequest(grant=approve), metadata=erin)).changed
    # MANAGE on the model lets erin set its policy (which needed the admin role before projects).
    await api.registry.SetPolicy(
        rpb.SetPolicyRequest(name="scorer", policy=rpb.ModelPolicy(max_production_versions=2)), metadata=erin
    )

    now = await api.access.ListGrants(
        xpb.ListGrantsRequest(scope_kind="model", scope="scorer"), metadata=admin
    )
    assert {(g.principal, g.permission) for g in now.grants} == {("erin", "MANAGE"), ("frank", "APPROVE")}
    then = await api.access.ListGrants(
        xpb.ListGrantsRequest(scope_kind="model", scope="scorer", as_of=before_grants), metadata=admin
    )
    assert list(then.grants) == []
    # A token without a role sees only its own grants.
    own = await api.access.ListGrants(xpb.ListGrantsRequest(), metadata=erin)
    assert {g.principal for g in own.grants} == {"erin"}


async def test_a_blob_of_another_project_cannot_be_fetched_by_its_digest(stack: SecurityStack) -> None:
    import hashlib
    import zlib

    api, admin = stack.api, stack.md()
    await api.access.CreateProject(xpb.CreateProjectRequest(name="fraud"), metadata=admin)
    data = b"secret training rows\n"
    digest = hashlib.sha256(data).hexdigest()
    blob = apb.UploadBlob(digest=digest, data=data, crc32=zlib.crc32(data))
    async for _ in api.artifacts.Upload(
        iter([apb.UploadRequest(batch=apb.UploadBatch(blobs=[blob]))]), metadata=admin
    ):
        pass
    entry = apb.ManifestEntry(path="rows.csv", digest=digest, size=len(data))
    await api.artifacts.CommitVersion(
        apb.CommitVersionRequest(name="customers", entries=[entry]), metadata=admin
    )
    eve = stack.md(await stack.token("eve", "none"))
    await api.access.AddGrant(
        xpb.AddGrantRequest(grant=grant("eve", "project", "fraud", "READ")), metadata=admin
    )

    async def download(md: list[tuple[str, str]]) -> bytes:
        out = b""
        async for part in api.artifacts.Download(
            apb.DownloadRequest(ranges=[apb.ByteRange(digest=digest)]), metadata=md
        ):
            out += part.data
        return out

    assert await download(admin) == data
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await download(eve)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert list((await api.artifacts.ListArtifacts(apb.ListArtifactsRequest(), metadata=eve)).artifacts) == []
    # Once eve may read the project the version lives in, the same digest is hers to fetch.
    await api.access.AddGrant(
        xpb.AddGrantRequest(grant=grant("eve", "project", "default", "READ")), metadata=admin
    )
    assert await download(eve) == data
