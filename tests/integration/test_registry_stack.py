"""An in-process platform with tracking, artifacts and the registry, for the registry's tests.

The registry reaches tracking and artifacts through their gRPC APIs on the process's own address, as
under `modelog up` (the platform's log reader names it, with the internal token).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

import modelog.artifacts as art
from eventlog import RecordedEvent
from eventlog.sources import GrpcLogReader
from modelog._client import Connection
from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog.shared.settings import Settings
from modelog_platform.app import Platform, Server, start_server

SERVICES = ("tracking", "artifacts", "registry")


class Node:
    """One server process's worth: a platform and its gRPC server (two nodes on one database behave
    like two processes of the same services)."""

    def __init__(self, platform: Platform, server: Server) -> None:
        self.platform, self.server = platform, server
        self.url = f"127.0.0.1:{server.port}"
        self.channel = grpc.aio.insecure_channel(self.url)
        self.registry = registry_pb2_grpc.RegistryStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.platform.close()


async def open_node(dsn: str, home: Path) -> Node:
    platform = await Platform.open(Settings(home=home, addr="127.0.0.1:0"), dsn, services=SERVICES)
    await platform.ensure_admin_token()
    server = await start_server(platform, "127.0.0.1:0")
    internal = await platform.ensure_internal_token()
    platform.start_bus(None, GrpcLogReader(f"127.0.0.1:{server.port}", internal))
    return Node(platform, server)


class RegistryStack:
    def __init__(self, node: Node, home: Path, admin: str) -> None:
        self.node, self.home, self.admin = node, home, admin
        self.platform = node.platform
        self.url = node.url
        self.api = node.registry
        self.tracking = tracking_pb2_grpc.TrackingStub(node.channel)
        self.identity = identity_pb2_grpc.IdentityStub(node.channel)
        self.tokens: dict[str, str] = {"admin": admin}

    def md(self, user: str = "admin", key: str | None = None) -> list[tuple[str, str]]:
        md = [("authorization", f"Bearer {self.tokens[user]}")]
        return [*md, ("idempotency-key", key)] if key else md

    async def user(self, name: str, *roles: str) -> str:
        resp = await self.identity.CreateToken(
            identity_pb2.CreateTokenRequest(name=name, roles=list(roles or ("member",))), metadata=self.md()
        )
        self.tokens[name] = resp.secret
        return str(resp.secret)

    async def head(self) -> int:
        return (await self.platform.stores["registry"].head())[0]

    async def stream(self, model: str) -> list[RecordedEvent]:
        model_id = await self.platform.pool.fetchval(
            "SELECT model_id FROM registry.models WHERE name = $1", model
        )
        return await self.platform.stores["registry"].read_stream(f"model-{model_id}")

    async def trained_run(
        self,
        experiment: str = "churn",
        params: dict[str, str] | None = None,
        metrics: Sequence[tuple[str, float, int]] = (("auc", 0.71, 0), ("auc", 0.83, 1), ("loss", 0.4, 1)),
        finish: bool = True,
    ) -> str:
        started = await self.tracking.StartRun(
            tpb.StartRunRequest(
                experiment_name=experiment,
                create_experiment=True,
                params=params or {"lr": "0.01", "depth": "6"},
            ),
            metadata=self.md(),
        )
        run_id = started.run.info.run_id
        keys, values, steps = zip(*metrics, strict=True)
        await self.tracking.LogMetricsBatch(
            tpb.MetricBatch(run_id=run_id, keys=keys, values=values, steps=steps), metadata=self.md()
        )
        await self.tracking.LogDatasetInput(
            tpb.LogDatasetInputRequest(
                run_id=run_id,
                dataset=tpb.DatasetInput(
                    name="customers",
                    digest="sha256:" + "cd" * 32,
                    source="s3://bucket/customers",
                    context="training",
                ),
            ),
            metadata=self.md(),
        )
        if finish:
            await self.tracking.FinishRun(
                tpb.FinishRunRequest(run_id=run_id, status=tpb.RUN_STATUS_FINISHED), metadata=self.md()
            )
        return str(run_id)

    async def model_artifact(
        self, run_id: str | None, name: str = "churn-model", content: bytes | None = None, kind: str = "model"
    ) -> art.ArtifactVersion:
        """A model package (two files) logged as a new artifact version through the artifacts SDK."""
        work = self.home / "work" / uuid.uuid4().hex
        work.mkdir(parents=True)
        (work / "model.pkl").write_bytes(content or uuid.uuid4().bytes * 100)
        (work / "MLmodel").write_text("flavor: sklearn\n")

        def log() -> art.ArtifactVersion:
            with Connection(self.url, self.admin) as conn:
                return art.log_artifacts(work, name=name, kind=kind, run_id=run_id, conn=conn)

        return await asyncio.to_thread(log)

    async def version(
        self, model: str = "churn", run_id: str | None = None, **fields: Any
    ) -> pb.ModelVersion:
        """A new version of `model` from a fresh run and model artifact (the model is created if new)."""
        run_id = run_id or await self.trained_run()
        artifact = await self.model_artifact(run_id)
        request = pb.CreateModelVersionRequest(
            model=model,
            run_id=run_id,
            artifact=pb.ArtifactRef(name=artifact.name, version=artifact.version),
            create_model=True,
            **fields,
        )
        return (await self.api.CreateModelVersion(request, metadata=self.md())).version

    async def promote(
        self, model: str, version: int, stage: int, requester: str = "admin", *approvers: str
    ) -> None:
        ref = pb.VersionRef(model=model, version=version)
        await self.api.RequestTransition(
            pb.RequestTransitionRequest(ref=ref, stage=stage), metadata=self.md(requester)
        )
        for who in approvers:
            await self.api.ApproveTransition(pb.ApproveTransitionRequest(ref=ref), metadata=self.md(who))


@pytest.fixture
async def stack(fresh_db: str, modelog_home: Path) -> AsyncIterator[RegistryStack]:
    node = await open_node(fresh_db, modelog_home)
    admin = (modelog_home / "admin-token").read_text().strip()
    s = RegistryStack(node, modelog_home, admin)
    try:
        yield s
    finally:
        with contextlib.suppress(Exception):
            await node.close()
