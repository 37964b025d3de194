"""The tracking and artifacts services as the registry sees them: through their gRPC APIs, never their
tables, even when they run in the same process. Where peers are and how calls are made is
`modelog_platform.peers`."""

from __future__ import annotations

from modelog._gen.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from modelog_platform.peers import PeerClient

from .events import ArtifactLineage, RunDataset, RunLineage, RunMetric

MAX_PARAM_VALUE = 1_000
"""Param values longer than this are cut in the version's lineage (the run keeps them whole): a version
event must stay well below a Kafka message's 1 MB."""

_RUN_STATUS = {1: "RUNNING", 2: "FINISHED", 3: "FAILED", 4: "KILLED"}


class Peers(PeerClient):
    """The calls the registry makes: a run's lineage from tracking, an artifact version from artifacts."""

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
