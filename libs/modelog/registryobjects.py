"""What the registry SDK returns: model versions and registered models, transition requests, lineage
and history. A version and a model act through the Registry they came from, else through the default
connection's (`modelog.connect()`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._time import when as _when
from modelog.errors import FailedPrecondition
from modelog.registryrefs import REQUEST_NAMES, STAGE_NAMES, STATUS_NAMES, stage_value

if TYPE_CHECKING:
    from modelog.registry import Registry


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from modelog.registry import models  # late: modelog.registry imports this module

    return models.registry()


@dataclass
class Approval:
    by: str
    comment: str
    at: datetime | None


@dataclass
class TransitionRequest:
    request_id: str
    model: str
    version: int
    from_stage: str
    to_stage: str
    status: str
    requested_by: str
    comment: str
    approvals_required: int
    approvals: list[Approval]
    closed_by: str
    close_comment: str
    created_at: datetime | None

    @classmethod
    def of(cls, r: pb.TransitionRequest) -> TransitionRequest:
        return cls(
            request_id=r.request_id,
            model=r.model,
            version=r.version,
            from_stage=STAGE_NAMES.get(r.from_stage, "?"),
            to_stage=STAGE_NAMES.get(r.to_stage, "?"),
            status=REQUEST_NAMES.get(r.status, "?"),
            requested_by=r.requested_by,
            comment=r.comment,
            approvals_required=r.approvals_required,
            approvals=[Approval(a.by, a.comment, _when(a.at)) for a in r.approvals],
            closed_by=r.closed_by,
            close_comment=r.close_comment,
            created_at=_when(r.created_at),
        )


@dataclass
class Lineage:
    """What a version was made from, as recorded when it was created."""

    run_id: str
    experiment_id: str
    run_name: str
    run_status: str
    params: dict[str, str]
    metrics: dict[str, float]
    metric_summaries: dict[str, dict[str, float]]
    datasets: list[dict[str, str]]
    artifact: str
    manifest_digest: str
    file_count: int
    total_size: int

    @classmethod
    def of(cls, lin: pb.Lineage) -> Lineage:
        return cls(
            run_id=lin.run_id,
            experiment_id=lin.experiment_id,
            run_name=lin.run_name,
            run_status=lin.run_status,
            params=dict(lin.params),
            metrics={m.key: m.last for m in lin.metrics},
            metric_summaries={
                m.key: {"last": m.last, "last_step": m.last_step, "min": m.min, "max": m.max}
                for m in lin.metrics
            },
            datasets=[
                {
                    "name": d.name,
                    "digest": d.digest,
                    "source_type": d.source_type,
                    "source": d.source,
                    "context": d.context,
                }
                for d in lin.datasets
            ],
            artifact=f"{lin.artifact_name}:v{lin.artifact_version}",
            manifest_digest=lin.manifest_digest,
            file_count=lin.file_count,
            total_size=lin.total_size,
        )


@dataclass
class HistoryEntry:
    position: int
    recorded_at: datetime | None
    actor: str
    type: str
    version: int
    summary: str
    payload_json: str


@dataclass
class ModelVersion:
    model: str
    version: int
    stage: str
    status: str
    run_id: str
    artifact: str
    manifest_digest: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    framework: str = ""
    signature: str = ""
    aliases: list[str] = field(default_factory=list)
    open_request: TransitionRequest | None = None
    created_by: str = ""
    created_at: datetime | None = None
    registry: Registry | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, v: pb.ModelVersion, registry: Registry | None = None) -> ModelVersion:
        return cls(
            model=v.model,
            version=v.version,
            stage=STAGE_NAMES.get(v.stage, "?"),
            status=STATUS_NAMES.get(v.status, "?"),
            run_id=v.run_id,
            artifact=f"{v.artifact_name}:v{v.artifact_version}",
            manifest_digest=v.manifest_digest,
            description=v.description,
            tags=dict(v.tags),
            framework=v.framework,
            signature=v.signature,
            aliases=list(v.aliases),
            open_request=TransitionRequest.of(v.open_request) if v.HasField("open_request") else None,
            created_by=v.created_by,
            created_at=_when(v.created_at),
            registry=registry,
        )

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"

    def _pb_ref(self) -> pb.VersionRef:
        return pb.VersionRef(model=self.model, version=self.version)

    def _reg(self) -> Registry:
        return _registry(self.registry)

    def refresh(self) -> ModelVersion:
        return self._reg().get(self.ref)

    def request_transition(self, stage: str, comment: str = "") -> TransitionRequest:
        """Ask for a stage change; with no approval needed by the policy, the version moves at once."""
        resp = self._reg().call(
            "RequestTransition",
            pb.RequestTransitionRequest(ref=self._pb_ref(), stage=stage_value(stage), comment=comment),
        )
        self._update(resp.version)
        return TransitionRequest.of(resp.request)

    def approve(self, comment: str = "", request_id: str = "") -> ModelVersion:
        """Approve the version's open request (or `request_id`); the version moves once enough approve."""
        req = pb.ApproveTransitionRequest(ref=self._pb_ref(), request_id=request_id, comment=comment)
        self._update(self._reg().call("ApproveTransition", req).version)
        return self

    def reject(self, comment: str = "", request_id: str = "") -> TransitionRequest:
        req = pb.RejectTransitionRequest(ref=self._pb_ref(), request_id=request_id, comment=comment)
        return TransitionRequest.of(self._reg().call("RejectTransition", req).request)

    def cancel_request(self, comment: str = "", request_id: str = "") -> TransitionRequest:
        req = pb.CancelTransitionRequest(ref=self._pb_ref(), request_id=request_id, comment=comment)
        return TransitionRequest.of(self._reg().call("CancelTransition", req).request)

    def comment(self, text: str, request_id: str = "") -> None:
        self._reg().call(
            "CommentOnVersion",
            pb.CommentOnVersionRequest(ref=self._pb_ref(), comment=text, request_id=request_id),
        )

    def set_alias(self, alias: str) -> ModelVersion:
        """Point `alias` at this version (moving it from wherever it pointed)."""
        resp = self._reg().call(
            "SetAlias", pb.SetAliasRequest(model=self.model, alias=alias, version=self.version)
        )
        self._update(resp.version)
        return self

    def deprecate(self, reason: str = "") -> ModelVersion:
        self._update(
            self._reg()
            .call("DeprecateVersion", pb.DeprecateVersionRequest(ref=self._pb_ref(), reason=reason))
            .version
        )
        return self

    def annotate(
        self,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        delete_tags: Sequence[str] = (),
    ) -> ModelVersion:
        req = pb.AnnotateVersionRequest(
            ref=self._pb_ref(), tags=dict(tags or {}), delete_tag_keys=list(delete_tags)
        )
        if description is not None:
            req.description = description
        self._update(self._reg().call("AnnotateVersion", req).version)
        return self

    def lineage(self) -> Lineage:
        return Lineage.of(self._reg().call("GetLineage", pb.GetLineageRequest(ref=self._pb_ref())).lineage)

    def history(self) -> list[HistoryEntry]:
        return self._reg().history(self.model, version=self.version)

    def download(self, target: str | os.PathLike[str]) -> Path:
        """The version's files, written under `target` by the artifacts SDK. The files are checked against
        the manifest digest the registry recorded when the version was created."""
        from modelog import artifacts

        reg = self._reg()
        found = artifacts.get(self.artifact, conn=reg.conn)
        if found.manifest_digest != self.manifest_digest:
            raise FailedPrecondition(
                f"{self.ref} was registered from {self.artifact} with manifest {self.manifest_digest[:12]}, "
                f"but the artifacts service now reports {found.manifest_digest[:12]}"
            )
        return found.download(target)

    def _update(self, v: pb.ModelVersion) -> None:
        fresh = ModelVersion.of(v, self.registry)
        for name in self.__dataclass_fields__:
            if name != "registry":
                setattr(self, name, getattr(fresh, name))


@dataclass
class RegisteredModel:
    name: str
    model_id: str
    description: str
    tags: dict[str, str]
    deleted: bool
    latest_version: int
    aliases: dict[str, int]
    production_versions: list[int]
    policy: dict[str, Any]
    created_by: str
    created_at: datetime | None
    registry: Registry | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, m: pb.Model, registry: Registry | None = None) -> RegisteredModel:
        def stage(p: pb.StagePolicy) -> dict[str, Any]:
            return {
                "approvals_required": p.approvals_required,
                "approver_role": p.approver_role,
                "from_stages": [STAGE_NAMES.get(s, "?") for s in p.from_stages],
                "allow_self_approval": p.allow_self_approval,
            }

        return cls(
            name=m.name,
            model_id=m.model_id,
            description=m.description,
            tags=dict(m.tags),
            deleted=m.deleted,
            latest_version=m.latest_version,
            aliases=dict(m.aliases),
            production_versions=list(m.production_versions),
            policy={
                "Staging": stage(m.policy.staging),
                "Production": stage(m.policy.production),
                "Archived": stage(m.policy.archived),
                "max_production_versions": m.policy.max_production_versions,
            },
            created_by=m.created_by,
            created_at=_when(m.created_at),
            registry=registry,
        )

    def versions(self) -> list[ModelVersion]:
        return _registry(self.registry).search_versions(model=self.name)

    def get(self, version_or_alias: int | str) -> ModelVersion:
        spec = f"/{version_or_alias}" if isinstance(version_or_alias, int) else f"@{version_or_alias}"
        return _registry(self.registry).get(self.name + spec)
