"""A create or rename cancelled between claiming the name and writing the model never strands the name
(the caller hung up; the claim and the write finish together or not at all)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog_platform import context
from modelog_platform.authz import Perm
from modelog_services.registry.api import RegistryServicer
from modelog_services.registry.peers import Peers
from tests.security.stackfix import SecurityStack
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def stack(fresh_db: str, modelog_home: Path) -> AsyncIterator[SecurityStack]:
    s = await SecurityStack.open(fresh_db, modelog_home)
    yield s
    await s.close()


async def _cancelled_midway(servicer: RegistryServicer, call: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs `call`, holds the model's write until the caller has been cancelled, then lets it go."""
    release, claimed = asyncio.Event(), asyncio.Event()
    real = servicer._on_model

    async def held(*args: Any, **kwargs: Any) -> Any:
        claimed.set()
        await release.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(servicer, "_on_model", held)
    task = asyncio.create_task(call)
    await asyncio.wait_for(claimed.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    monkeypatch.setattr(servicer, "_on_model", real)


async def _settled(servicer: RegistryServicer, name: str) -> pb.Model:
    async def model() -> pb.Model:
        return (await servicer.GetModel(pb.GetModelRequest(name=name), None)).model  # type: ignore[arg-type]

    return await wait_until_async(model, 10, f"model {name!r} to land", ignoring=(Exception,))


async def test_a_cancelled_create_or_rename_still_lands_whole(
    stack: SecurityStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicer = RegistryServicer(stack.platform.stores["registry"], Peers(stack.platform))
    token = context.bind(context.RequestContext(actor="admin", roles=("admin",), perms=frozenset(Perm)))
    try:
        await _cancelled_midway(
            servicer, servicer.CreateModel(pb.CreateModelRequest(name="churn"), None), monkeypatch
        )  # type: ignore[arg-type]
        model = await _settled(servicer, "churn")
        assert model.name == "churn"
        rename = servicer.RenameModel(pb.RenameModelRequest(name="churn", new_name="churn2"), None)  # type: ignore[arg-type]
        await _cancelled_midway(servicer, rename, monkeypatch)
        assert (await _settled(servicer, "churn2")).model_id == model.model_id
        # The old name was released with the rename: a new model may take it.
        again = await servicer.CreateModel(pb.CreateModelRequest(name="churn"), None)  # type: ignore[arg-type]
        assert again.model.model_id != model.model_id
    finally:
        context.unbind(token)
