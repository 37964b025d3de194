"""The tracking and artifacts services as the registry sees them: through their gRPC APIs, never their
tables, even when they run in the same process (design.md: a service calls the other's API).

Where they are: MODELOG_PEERS names a service's address (one process per service); otherwise the
address the process's log reader uses (MODELOG_URL, or the process's own address once `modelog up` /
`modelog serve` started its server), then `platform.address` if the platform records it, then
MODELOG_URL / MODELOG_ADDR. Calls carry the platform's internal token.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from eventlog import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from eventlog.sources import GrpcLogReader, parse_routes
from modelog._gen.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2, tracking_pb2_grpc

from .events import ArtifactLineage, RunDataset, RunLineage, RunMetric

if TYPE_CHECKING:
    from modelog_platform.app import Platform

TIMEOUT_S = 10.0
MAX_PARAM_VALUE = 1_000
"""Param values longer than this are cut in the version's lineage (the run keeps them whole): a version
event must stay well below a Kafka message's 1 MB."""

_RUN_STATUS = {1: "RUNNING", 2: "FINISHED", 3: "FAILED", 4: "KILLED"}


class Peers:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._token: str | None = None
        self._token_lock = asyncio.Lock()
        self._channels: dict[str, grpc.aio.Channel] = {}

    def target(self, service: str) -> str:
        settings = self.platform.settings
        routes = parse_routes(settings.peers) if settings.peers else {}
        if service in routes:
            return routes[service]
        reader = self.platform.reader
        if isinstance(reader, GrpcLogReader):
            return reader.routes.get(service, reader.target)
        own = getattr(self.platform, "address", None)
        if isinstance(own, str) and own:
            return own
        if settings.url:
            return settings.url
        if not settings.addr.endswith(":0"):
            return settings.addr
        raise Unavailable(
            f"the registry does not know where the {service} service is: "
            f"set MODELOG_PEERS={service}=host:port"
        )

    async def _metadata(self) -> list[tuple[str, str]]:
        if self._token is None:
            async with self._token_lock:
                if self._token is None:
                    self._token = await self.platform.ensure_internal_token()
        return [("authorization", f"Bearer {self._token}")]

    def _channel(self, service: str) -> grpc.aio.Channel:
        target = self.target(service)
        if target not in self._channels:
            self._channels[target] = grpc.aio.insecure_channel(target)
        return self._channels[target]

    async def _call(self, service: str, what: str, field: str, call: Any, request: Any) -> Any:
        try:
            return await call(request, metadata=await self._metadata(), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            _refuse(service, what, field, exc, self.target(service))

    async def run(self, run_id: str) -> tuple[RunLineage, bool]:
        """The run's lineage and whether it is deleted."""
        stub = tracking_pb2_grpc.TrackingStub(self._channel("tracking"))
        resp = await self._call(
            "tracking", f"run {run_id!r}", "run_id", stub.GetRun, tracking_pb2.GetRunRequest(run_id=run_id)
        )
        return run_lineage(resp.run), bool(resp.run.info.deleted)

    async def artifact(self, name: str, version: int, alias: str) -> ArtifactLineage:
        stub = artifacts_pb2_grpc.ArtifactsStub(self._channel("artifacts"))
        ref = artifacts_pb2.VersionRef(name=name, version=version, alias=alias)
        spelled = f"{name}:v{version}" if version else f"{name}@{alias}" if alias else f"{name} (latest)"
        resp = await self._call(
            "artifacts",
            f"artifact {spelled}",
            "artifact",
            stub.GetVersion,
            artifacts_pb2.GetVersionRequest(ref=ref),
        )
        v = resp.version
        return ArtifactLineage(
            name=v.name,
            version=v.version,
            kind=v.kind or "other",
            manifest_digest=v.manifest_digest,
            file_count=v.file_count,
            total_size=v.total_size,
            run_id=v.run_id or None,
        )

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


def _refuse(service: str, what: str, field: str, exc: grpc.aio.AioRpcError, target: str) -> NoReturn:
    code, details = exc.code(), exc.details() or exc.code().name
    if code == grpc.StatusCode.NOT_FOUND:
        raise NotFound(f"{what} does not exist (the {service} service says: {details})")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        raise InvalidArgument.field(field, f"the {service} service refused {what}: {details}")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        raise FailedPrecondition(f"the {service} service refused {what}: {details}")
    raise Unavailable(
        f"could not check {what} with the {service} service at {target} ({code.name}: {details}); "
        "nothing was written, retry later"
    )


def run_lineage(run: tracking_pb2.Run) -> RunLineage:
    params: dict[str, str] = {}
    truncated: list[str] = []
    for key, value in sorted(run.params.items()):
        if len(value) > MAX_PARAM_VALUE:
            truncated.append(key)
            value = value[:MAX_PARAM_VALUE]
        params[key] = value
    return RunLineage(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        run_name=run.info.name,
        status=_RUN_STATUS.get(run.info.status, "UNKNOWN"),
        params=params,
        truncated_params=tuple(truncated),
        metrics=tuple(
            RunMetric(key=m.key, last=m.last, last_step=m.last_step, min=m.min, max=m.max)
            for m in sorted(run.metrics, key=lambda m: m.key)
        ),
        datasets=tuple(
            RunDataset(
                name=d.name, digest=d.digest, source_type=d.source_type, source=d.source, context=d.context
            )
            for d in run.datasets
        ),
    )
