"""Bearer tokens under attack, over the real gRPC surface: malformed, oversized, expired, revoked or
rotated secrets are UNAUTHENTICATED and write nothing; a token granted one project finds nothing of
another (NOT_FOUND, as for what does not exist) and, once it may read there, may still not change it
(PERMISSION_DENIED). Expiry on a read and the throttling of failures: tests/integration/test_tokens.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import Unauthenticated
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.identity.v1 import access_pb2 as xpb
from modelog._gen.identity.v1 import identity_pb2 as ipb
from modelog._gen.registry.v1 import registry_pb2 as rpb
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog_platform.identity import TOKEN_PREFIX
from tests.security.stackfix import SecurityStack, refused
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio

Md = list[tuple[str, str]]


def _writes(stack: SecurityStack, run: tpb.Run) -> dict[str, Callable[[Md], Awaitable[Any]]]:
    """One write per service, each into something that exists."""
    api = stack.api
    exp_id, run_id = run.info.experiment_id, run.info.run_id
    batch = tpb.MetricBatch(run_id=run_id, keys=["loss"], values=[0.1], steps=[1], timestamps_ms=[1])
    return {
        "CreateExperiment": lambda md: api.tracking.CreateExperiment(
            tpb.CreateExperimentRequest(name="intruder"), metadata=md
        ),
        "StartRun": lambda md: api.tracking.StartRun(tpb.StartRunRequest(experiment_id=exp_id), metadata=md),
        "LogMetricsBatch": lambda md: api.tracking.LogMetricsBatch(batch, metadata=md),
        "CreateModel": lambda md: api.registry.CreateModel(
            rpb.CreateModelRequest(name="intruder"), metadata=md
        ),
        "CommitVersion": lambda md: api.artifacts.CommitVersion(
            apb.CommitVersionRequest(name="intruder"), metadata=md
        ),
        "CreateToken": lambda md: api.identity.CreateToken(
            ipb.CreateTokenRequest(name="intruder"), metadata=md
        ),
    }


async def _refused_everywhere(stack: SecurityStack, run: tpb.Run, md: Md, expect: str = "") -> None:
    for name, write in _writes(stack, run).items():
        async with stack.writes_nothing():
            said = await refused(write(md), grpc.StatusCode.UNAUTHENTICATED)
        assert expect in said, (name, said)


async def test_malformed_secrets_are_unauthenticated_write_nothing_and_are_never_echoed(
    stack: SecurityStack,
) -> None:
    run = await stack.run()
    admin = stack.admin
    attempts: dict[str, tuple[Md, str]] = {
        "no header": ([], "missing bearer token"),
        "empty bearer": ([("authorization", "Bearer ")], "missing bearer token"),
        "spaces only": ([("authorization", "Bearer      ")], "missing bearer token"),
        "another scheme": ([("authorization", f"Basic {admin}")], "missing bearer token"),
        "no scheme": ([("authorization", admin)], "missing bearer token"),
        "garbage": (stack.md("!!not-a-token!!"), "unknown or revoked token"),
        "prefix only": (stack.md(TOKEN_PREFIX), "unknown or revoked token"),
        "wrong prefix": (stack.md("ghp_" + admin[len(TOKEN_PREFIX) :]), "unknown or revoked token"),
        "truncated": (stack.md(admin[:-1]), "unknown or revoked token"),
        "one character more": (stack.md(admin + "A"), "unknown or revoked token"),
        "case changed": (stack.md(admin.swapcase()), "unknown or revoked token"),
        # Under gRPC's 8 KiB soft limit on metadata, past which calls are refused at random.
        "7 KB": (stack.md(TOKEN_PREFIX + "x" * 7_000), "unknown or revoked token"),
    }
    writes = list(_writes(stack, run).values())
    # One write each: more than 20 failed lookups from one host within a minute are throttled.
    for i, (label, (md, why)) in enumerate(attempts.items()):
        async with stack.writes_nothing():
            said = await refused(writes[i % len(writes)](md), grpc.StatusCode.UNAUTHENTICATED)
        assert why in said, (label, said)
        secret = dict(md).get("authorization", "").partition(" ")[2].strip()
        assert len(secret) < 8 or secret[4:] not in said, label  # the secret is not reflected back
    who = await stack.api.identity.WhoAmI(ipb.WhoAmIRequest(), metadata=stack.md())
    assert who.actor == "admin"


async def test_a_100_kb_secret_is_refused_by_the_transport_and_the_server_keeps_serving(
    stack: SecurityStack,
) -> None:
    run = await stack.run()
    for write in _writes(stack, run).values():
        async with stack.writes_nothing():
            said = await refused(
                write(stack.md(TOKEN_PREFIX + "x" * 100_000)), grpc.StatusCode.RESOURCE_EXHAUSTED
            )
        assert "metadata size exceeds" in said
    who = await stack.api.identity.WhoAmI(ipb.WhoAmIRequest(), metadata=stack.md())
    assert who.actor == "admin"


async def test_a_secret_that_is_not_ascii_is_an_unknown_token(stack: SecurityStack) -> None:
    """No gRPC client sends one (header values are printable ASCII) and the HTTP gateway refuses one
    before it forwards; should anything pass one on, the authority refuses it like any unknown secret
    rather than failing on it."""
    authority = stack.platform.authority
    assert authority is not None
    for secret in (
        TOKEN_PREFIX + "t\u00f6k",
        "\u043c\u043b\u0433_" + "x" * 40,
        TOKEN_PREFIX + "\U0001f511",
        "\x00" * 8,
    ):
        with pytest.raises(Unauthenticated, match="unknown or revoked token"):
            await authority.authenticate(secret, "192.0.2.1")


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


async def test_an_expired_token_writes_nothing_anywhere(stack: SecurityStack) -> None:
    run = await stack.run()
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    made = await stack.api.identity.CreateToken(
        ipb.CreateTokenRequest(name="brief", roles=["admin"], expires_at=_ts(soon)), metadata=stack.md()
    )
    md = stack.md(made.secret)
    await stack.api.tracking.StartRun(tpb.StartRunRequest(experiment_id=run.info.experiment_id), metadata=md)
    await wait_until_async(lambda: datetime.now(UTC) > soon, 10, "the token's expiry")
    await _refused_everywhere(stack, run, md, f"token brief expired at {soon.isoformat()}")


async def test_a_revoked_or_rotated_secret_writes_nothing_from_the_next_call(stack: SecurityStack) -> None:
    run = await stack.run()
    api, admin = stack.api, stack.md()
    for name in ("leaked", "rotated"):
        made = await api.identity.CreateToken(
            ipb.CreateTokenRequest(name=name, roles=["admin"]), metadata=admin
        )
        old = stack.md(made.secret)
        await api.tracking.StartRun(tpb.StartRunRequest(experiment_id=run.info.experiment_id), metadata=old)
        if name == "leaked":
            await api.identity.RevokeToken(ipb.RevokeTokenRequest(name=name), metadata=admin)
        else:
            await api.identity.RotateToken(ipb.RotateTokenRequest(name=name), metadata=admin)
        await _refused_everywhere(stack, run, old, "unknown or revoked token")
    # Nor is a revoked token's name issued again: its history stays one token's.
    await refused(
        api.identity.CreateToken(ipb.CreateTokenRequest(name="leaked"), metadata=admin),
        grpc.StatusCode.ALREADY_EXISTS,
    )


def _grant(principal: str, scope: str, perm: str) -> xpb.AddGrantRequest:
    return xpb.AddGrantRequest(
        grant=xpb.GrantInfo(principal=principal, scope_kind="project", scope=scope, permission=perm)
    )


async def test_a_token_granted_one_project_finds_nothing_of_another_and_changes_nothing_there(
    stack: SecurityStack,
) -> None:
    api, admin = stack.api, stack.md()
    for project in ("fraud", "churn"):
        await api.access.CreateProject(xpb.CreateProjectRequest(name=project), metadata=admin)
    exp = await api.tracking.CreateExperiment(
        tpb.CreateExperimentRequest(name="churn-xgb", project="churn"), metadata=admin
    )
    exp_id = exp.experiment.experiment_id
    run = (await api.tracking.StartRun(tpb.StartRunRequest(experiment_id=exp_id), metadata=admin)).run
    run_id = run.info.run_id
    digest = await stack.blob(b"churn rows\n")
    entry = apb.ManifestEntry(path="rows.csv", digest=digest, size=11)
    await api.artifacts.CommitVersion(
        apb.CommitVersionRequest(name="churn-data", entries=[entry], run_id=run_id, project="churn"),
        metadata=admin,
    )
    await api.registry.CreateModelVersion(
        rpb.CreateModelVersionRequest(
            model="churn-model",
            artifact=rpb.ArtifactRef(name="churn-data"),
            create_model=True,
            project="churn",
        ),
        metadata=admin,
    )
    ana = stack.md(await stack.token("ana", "none"))
    await api.access.AddGrant(_grant("ana", "fraud", "EDIT"), metadata=admin)
    batch = tpb.MetricBatch(run_id=run_id, keys=["loss"], values=[0.1], steps=[1], timestamps_ms=[1])
    mine = await api.tracking.CreateExperiment(  # ana works in her project
        tpb.CreateExperimentRequest(name="fraud-xgb", project="fraud"), metadata=ana
    )
    assert mine.experiment.project == "fraud"

    attacks: dict[str, Callable[[], Awaitable[Any]]] = {
        "read the experiment": lambda: api.tracking.GetExperiment(
            tpb.GetExperimentRequest(experiment_id=exp_id), metadata=ana
        ),
        "read the run": lambda: api.tracking.GetRun(tpb.GetRunRequest(run_id=run_id), metadata=ana),
        "create an experiment there": lambda: api.tracking.CreateExperiment(
            tpb.CreateExperimentRequest(name="planted", project="churn"), metadata=ana
        ),
        "start a run there": lambda: api.tracking.StartRun(
            tpb.StartRunRequest(experiment_id=exp_id), metadata=ana
        ),
        "log metrics there": lambda: api.tracking.LogMetricsBatch(batch, metadata=ana),
        "log params there": lambda: api.tracking.LogParams(
            tpb.LogParamsRequest(run_id=run_id, params={"planted": "1"}), metadata=ana
        ),
        "rename its experiment": lambda: api.tracking.RenameExperiment(
            tpb.RenameExperimentRequest(experiment_id=exp_id, name="mine-now"), metadata=ana
        ),
        "commit a new version of its artifact": lambda: api.artifacts.CommitVersion(
            apb.CommitVersionRequest(name="churn-data", entries=[entry]), metadata=ana
        ),
        "commit into the project": lambda: api.artifacts.CommitVersion(
            apb.CommitVersionRequest(name="planted", entries=[entry], project="churn"), metadata=ana
        ),
        "read its model": lambda: api.registry.GetModel(
            rpb.GetModelRequest(name="churn-model"), metadata=ana
        ),
        "create a model there": lambda: api.registry.CreateModel(
            rpb.CreateModelRequest(name="planted", project="churn"), metadata=ana
        ),
        "move its alias": lambda: api.registry.SetAlias(
            rpb.SetAliasRequest(model="churn-model", alias="champion", version=1), metadata=ana
        ),
        "register her run's files as its version": lambda: api.registry.CreateModelVersion(
            rpb.CreateModelVersionRequest(model="churn-model", artifact=rpb.ArtifactRef(name="churn-data")),
            metadata=ana,
        ),
    }
    attacks["grant herself in"] = lambda: api.access.AddGrant(_grant("ana", "churn", "EDIT"), metadata=ana)
    for label, attack in attacks.items():
        async with stack.writes_nothing():
            await refused(attack(), grpc.StatusCode.NOT_FOUND, label)

    # Once she may read the other project, she sees it, and still may not change it.
    await api.access.AddGrant(_grant("ana", "churn", "READ"), metadata=admin)
    got = await api.tracking.GetExperiment(tpb.GetExperimentRequest(experiment_id=exp_id), metadata=ana)
    assert got.experiment.name == "churn-xgb"
    reads = {"read the experiment", "read the run", "read its model"}
    for label, attack in attacks.items():
        if label in reads:
            continue
        async with stack.writes_nothing():
            said = await refused(attack(), grpc.StatusCode.PERMISSION_DENIED, label)
        need = "MANAGE" if label == "grant herself in" else "EDIT"
        assert need in said and "'churn'" in said, (label, said)
