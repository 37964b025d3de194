"""20 clients move aliases and request and approve transitions of one model at once, through two server
nodes on one database (as two processes would): the model stays consistent and no update is lost."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path

import grpc
import pytest

from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog_services.registry.domain import model_decider
from modelog_services.registry.events import registry
from tests.integration.test_registry_stack import RegistryStack, open_node, stack

pytestmark = pytest.mark.asyncio
__all__ = ["stack"]

CLIENTS = 20
STEPS = 25
VERSIONS = 6
ALIASES = ("champion", "challenger", "shadow")
EXPECTED_REFUSALS = {
    grpc.StatusCode.FAILED_PRECONDITION,  # no open request, one already open, wrong stage
    grpc.StatusCode.PERMISSION_DENIED,  # approving one's own request
    grpc.StatusCode.NOT_FOUND,  # removing an alias that is not there
}


async def test_concurrent_alias_moves_and_approvals_leave_a_consistent_model(
    stack: RegistryStack, fresh_db: str, tmp_path: Path
) -> None:
    for n in range(1, VERSIONS + 1):
        await stack.version("hot")
        await stack.promote("hot", n, pb.STAGE_STAGING)
    users = [f"u{i}" for i in range(CLIENTS)]
    for u in users:
        await stack.user(u, "member")
    other = await open_node(fresh_db, tmp_path / "node-b")  # a second process's worth of the services
    stubs = [stack.api, other.registry]

    alias_replies: list[tuple[str, int, int]] = []
    approvals = 0
    refusals: Counter[str] = Counter()

    async def client(i: int) -> None:
        nonlocal approvals
        rnd = random.Random(i)
        api: registry_pb2_grpc.RegistryStub = stubs[i % 2]
        md = stack.md(users[i])
        for _ in range(STEPS):
            n = rnd.randint(1, VERSIONS)
            ref = pb.VersionRef(model="hot", version=n)
            op = rnd.choices(
                ["alias", "request", "approve", "restage", "unalias"], weights=[40, 20, 30, 8, 2]
            )[0]
            try:
                if op == "alias":
                    alias = rnd.choice(ALIASES)
                    resp = await api.SetAlias(
                        pb.SetAliasRequest(model="hot", alias=alias, version=n), metadata=md
                    )
                    alias_replies.append((alias, n, resp.previous_version))
                elif op == "request":
                    req = pb.RequestTransitionRequest(ref=ref, stage=pb.STAGE_PRODUCTION)
                    await api.RequestTransition(req, metadata=md)
                elif op == "approve":
                    await api.ApproveTransition(pb.ApproveTransitionRequest(ref=ref), metadata=md)
                    approvals += 1
                elif op == "restage":
                    req = pb.RequestTransitionRequest(ref=ref, stage=pb.STAGE_STAGING)
                    await api.RequestTransition(req, metadata=md)
                else:
                    await api.RemoveAlias(
                        pb.RemoveAliasRequest(model="hot", alias=rnd.choice(ALIASES)), metadata=md
                    )
            except grpc.aio.AioRpcError as exc:
                assert exc.code() in EXPECTED_REFUSALS, f"{op}: {exc.code()} {exc.details()}"
                refusals[exc.code().name] += 1

    try:
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    finally:
        await other.close()

    recorded = await stack.stream("hot")
    assert [e.stream_version for e in recorded] == list(range(1, len(recorded) + 1))
    events = [e.decode(registry) for e in recorded]
    folded = model_decider.fold(events)

    # One Production version, and promotions really happened concurrently with everything else.
    assert approvals > 0 and len(folded.in_production()) == 1
    types = Counter(e.type for e in recorded)
    assert types["TransitionApproved"] == approvals  # every acknowledged approval is in the log, once

    # No lost update: each alias move names the target the alias really had just before it, and every
    # acknowledged move is in the log exactly once.
    current: dict[str, int | None] = {}
    moves = []
    for e in recorded:
        payload = json.loads(e.payload_json)
        if e.type == "AliasSet":
            assert payload["previous"] == current.get(payload["alias"]), payload
            current[payload["alias"]] = payload["version"]
            moves.append((payload["alias"], payload["version"], payload["previous"] or 0))
        elif e.type == "AliasRemoved":
            assert current.get(payload["alias"]) == payload["version"]
            current[payload["alias"]] = None
    acknowledged = [r for r in alias_replies if r[1] != r[2]]  # previous == version: it was already there
    assert Counter(acknowledged) == Counter(moves)

    # The view (written inline by two processes) says exactly what the stream says.
    view_versions = await stack.platform.pool.fetch(
        "SELECT v.version, v.stage, v.status, v.open_request FROM registry.versions v "
        "JOIN registry.models m USING (model_id) WHERE m.name = 'hot' ORDER BY v.version"
    )
    assert [(r[0], r[1], r[2], r[3]) for r in view_versions] == [
        (v.version, v.stage, v.status, v.open_request)
        for v in sorted(folded.versions.values(), key=lambda v: v.version)
    ]
    model = (await stack.api.GetModel(pb.GetModelRequest(name="hot"), metadata=stack.md())).model
    assert dict(model.aliases) == dict(folded.aliases) == {a: v for a, v in current.items() if v is not None}
    assert list(model.production_versions) == [v.version for v in folded.in_production()]
    for alias, version in model.aliases.items():
        target = (
            await stack.api.GetByAlias(pb.GetByAliasRequest(model="hot", alias=alias), metadata=stack.md())
        ).version
        assert target.version == version and target.status == pb.VERSION_STATUS_READY
    print(f"events={len(recorded)} approvals={approvals} alias moves={len(moves)} refusals={dict(refusals)}")


async def test_a_process_with_a_stale_memo_or_name_cache_neither_refuses_nor_skips_wrongly(
    stack: RegistryStack, fresh_db: str, tmp_path: Path
) -> None:
    await stack.version("churn")
    await stack.version("churn")
    a = stack.api
    other = await open_node(fresh_db, tmp_path / "node-b")
    b = other.registry
    md = stack.md()
    try:
        await a.SetAlias(pb.SetAliasRequest(model="churn", alias="champion", version=1), metadata=md)
        # Process B changes the model behind A's back.
        await b.SetAlias(pb.SetAliasRequest(model="churn", alias="champion", version=2), metadata=md)
        await b.SetAlias(pb.SetAliasRequest(model="churn", alias="shadow", version=2), metadata=md)
        # A's memo says champion is on 1 already (nothing to do) and there is no alias shadow.
        moved = await a.SetAlias(pb.SetAliasRequest(model="churn", alias="champion", version=1), metadata=md)
        assert moved.previous_version == 2
        assert (
            await a.RemoveAlias(pb.RemoveAliasRequest(model="churn", alias="shadow"), metadata=md)
        ).version == 2

        # B renames the model and registers another one under the old name; A's cache maps the name to
        # the first model, but its command must land on the model that has the name now.
        await b.RenameModel(pb.RenameModelRequest(name="churn", new_name="churn-2025"), metadata=md)
        await b.CreateModel(pb.CreateModelRequest(name="churn"), metadata=md)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await a.SetAlias(pb.SetAliasRequest(model="churn", alias="champion", version=2), metadata=md)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and "model 'churn' has no version 2" in (
            info.value.details() or ""
        )
        renamed = await a.GetByAlias(pb.GetByAliasRequest(model="churn-2025", alias="champion"), metadata=md)
        assert renamed.version.version == 1
    finally:
        await other.close()
    types = [e.type for e in await stack.stream("churn-2025")]
    assert types.count("AliasSet") == 4 and types.count("AliasRemoved") == 1
