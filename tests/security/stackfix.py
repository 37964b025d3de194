"""A whole platform in-process (every service, no bus) for the attack suite, with tokens on demand."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import grpc
import pytest

from eventlog import Metadata
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog._gen.identity.v1 import access_pb2_grpc, identity_pb2_grpc
from modelog._gen.monitoring.v1 import monitoring_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog.shared.settings import Settings
from modelog_platform.app import Platform, Server, start_server
from modelog_platform.grpc_errors import status_details


async def heads(platform: Platform) -> dict[str, int]:
    """Every log's head position (taken before a call: 'wrote nothing' compares two of these)."""
    return {name: (await store.head())[0] for name, store in platform.stores.items()}


class Apis:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.tracking = tracking_pb2_grpc.TrackingStub(channel)
        self.registry = registry_pb2_grpc.RegistryStub(channel)
        self.artifacts = artifacts_pb2_grpc.ArtifactsStub(channel)
        self.access = access_pb2_grpc.AccessStub(channel)
        self.identity = identity_pb2_grpc.IdentityStub(channel)
        self.monitoring = monitoring_pb2_grpc.MonitoringStub(channel)


class SecurityStack:
    def __init__(self, platform: Platform, server: Server, admin: str) -> None:
        self.platform, self.server, self.admin = platform, server, admin
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")

    @classmethod
    async def open(cls, dsn: str, home: Path) -> SecurityStack:
        platform = await Platform.open(Settings(home=home, addr="127.0.0.1:0"), dsn)
        path = await platform.ensure_admin_token()
        server = await start_server(platform, "127.0.0.1:0")
        return cls(platform, server, path.read_text().strip())

    @cached_property
    def api(self) -> Apis:
        return Apis(self.channel)

    async def token(self, name: str, *roles: str) -> str:
        assert self.platform.authority is not None
        secret, _ = await self.platform.authority.create(name, list(roles), Metadata(actor="admin"))
        return secret

    def md(self, token: str | None = None) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {token or self.admin}")]

    @asynccontextmanager
    async def writes_nothing(self) -> AsyncIterator[None]:
        """The block leaves every log's head where it was."""
        before = await heads(self.platform)
        yield
        after = await heads(self.platform)
        assert after == before, f"a refused call wrote to a log: {before} -> {after}"

    async def run(self, experiment: str = "exp") -> tpb.Run:
        """The admin's run in a new experiment of that name."""
        made = await self.api.tracking.StartRun(
            tpb.StartRunRequest(experiment_name=experiment, create_experiment=True), metadata=self.md()
        )
        return made.run

    async def blob(self, data: bytes) -> str:
        """Upload `data` as one blob (as the admin); its digest."""
        digest = hashlib.sha256(data).hexdigest()
        blob = apb.UploadBlob(digest=digest, data=data, crc32=zlib.crc32(data))
        upload = iter([apb.UploadRequest(batch=apb.UploadBatch(blobs=[blob]))])
        async for _ in self.api.artifacts.Upload(upload, metadata=self.md()):
            pass
        return digest

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.platform.close()


async def refused(call: Awaitable[Any], code: grpc.StatusCode, attempt: str = "") -> str:
    """Await a call that must fail with `code` (`attempt` says what it tried); its details."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, (attempt, info.value.code(), info.value.details())
    return info.value.details() or ""


async def invalid(call: Awaitable[Any], *fields: str) -> str:
    """Await a call that must be INVALID_ARGUMENT with a violation of one of `fields`; its description."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    violations = dict(status_details(info.value).get("field_violations", []))  # type: ignore[call-overload]
    named = [f for f in fields if f in violations]
    assert named, (fields, info.value.details())
    return str(violations[named[0]])
