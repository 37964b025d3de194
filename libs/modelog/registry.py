"""The model registry from Python: register a run's model artifact as a version, find versions by alias
or number, promote them through approvals, read their lineage and history, download them.

    from modelog.registry import models, register_model
    v = register_model(run, artifact="churn-model:v3", name="churn")
    v.request_transition("Production", comment="beats v2 on AUC")   # as alice
    models.get("churn/1").approve(comment="checked")                  # as bob (another token)
    models.get("churn/1").set_alias("champion")
    models.get("churn@champion").download("serving/")

References: "churn/3" (a version), "churn@champion" (an alias), "churn" or "churn/latest" (the newest
version that is not deleted). Calls go through the connection `modelog.connect()` made (MODELOG_URL,
MODELOG_TOKEN); each is retried on transient failures with its idempotency key, so a retry never
registers a version or records an approval twice.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, overload

from google.protobuf.message import Message

from modelog._client import Connection
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._time import when as _when
from modelog.asof import ModelAsOf, VersionAsOf, get_as_of
from modelog.errors import FailedPrecondition, InvalidArgument

STAGES = {
    "none": pb.STAGE_NONE,
    "staging": pb.STAGE_STAGING,
    "production": pb.STAGE_PRODUCTION,
    "archived": pb.STAGE_ARCHIVED,
}
STAGE_NAMES = {
    pb.STAGE_NONE: "None",
    pb.STAGE_STAGING: "Staging",
    pb.STAGE_PRODUCTION: "Production",
    pb.STAGE_ARCHIVED: "Archived",
}
STATUS_NAMES = {
    pb.VERSION_STATUS_READY: "READY",
    pb.VERSION_STATUS_DEPRECATED: "DEPRECATED",
    pb.VERSION_STATUS_DELETED: "DELETED",
}
REQUEST_NAMES = {
    pb.REQUEST_STATUS_OPEN: "OPEN",
    pb.REQUEST_STATUS_APPROVED: "APPROVED",
    pb.REQUEST_STATUS_REJECTED: "REJECTED",
    pb.REQUEST_STATUS_CANCELLED: "CANCELLED",
}


class _HasId(Protocol):
    id: str


def stage_value(stage: str) -> pb.Stage.ValueType:
    value = STAGES.get(stage.strip().lower())
    if value is None:
        raise InvalidArgument(f"unknown stage {stage!r}; stages are None, Staging, Production and Archived")
    return value


def parse_model_ref(ref: str) -> pb.VersionRef:
    """A version reference: "churn/3", "churn@champion", "churn" or "churn/latest" (the newest)."""
    if "@" in ref:
        model, _, alias = ref.rpartition("@")
        return pb.VersionRef(model=model, alias=alias)
    model, sep, spec = ref.rpartition("/")
    if not sep:
        return pb.VersionRef(model=ref)
    if spec == "latest":
        return pb.VersionRef(model=model)
    number = spec.removeprefix("v")
    if not number.isdigit() or int(number) < 1:
        raise InvalidArgument(f"{ref!r}: after '/' comes a version number (churn/3) or 'latest'")
    return pb.VersionRef(model=model, version=int(number))


# ---------------------------------------------------------------- what the registry returns


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
        return self.registry or models.registry()

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
        return (self.registry or models.registry()).search_versions(model=self.name)

    def get(self, version_or_alias: int | str) -> ModelVersion:
        spec = f"/{version_or_alias}" if isinstance(version_or_alias, int) else f"@{version_or_alias}"
        return (self.registry or models.registry()).get(self.name + spec)


# ---------------------------------------------------------------- the client


class Registry:
    """The Registry API over one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.stub = registry_pb2_grpc.RegistryStub(conn.channel)

    def call(self, rpc: str, request: Message) -> Any:
        method: Callable[..., Any] = getattr(self.stub, rpc)
        return method(request, timeout=60)  # raises modelog.errors (modelog._client)

    def _paged(self, rpc: str, request: Any, field: str) -> Iterator[Any]:
        """Every item of a paged search, page after page."""
        while True:
            resp = self.call(rpc, request)
            yield from getattr(resp, field)
            if not resp.next_page_token:
                return
            request.page_token = resp.next_page_token

    def get(self, ref: str) -> ModelVersion:
        """A version: "churn/3", "churn@champion", or "churn" (the newest one)."""
        resp = self.call("GetModelVersion", pb.GetModelVersionRequest(ref=parse_model_ref(ref)))
        return ModelVersion.of(resp.version, self)

    def by_alias(self, model: str, alias: str) -> ModelVersion:
        return ModelVersion.of(
            self.call("GetByAlias", pb.GetByAliasRequest(model=model, alias=alias)).version, self
        )

    def model(self, name: str) -> RegisteredModel:
        return RegisteredModel.of(self.call("GetModel", pb.GetModelRequest(name=name)).model, self)

    def create(
        self, name: str, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        req = pb.CreateModelRequest(name=name, description=description, tags=dict(tags or {}))
        return RegisteredModel.of(self.call("CreateModel", req).model, self)

    def search_models(
        self, name_contains: str = "", tags: Mapping[str, str] | None = None, include_deleted: bool = False
    ) -> list[RegisteredModel]:
        req = pb.SearchModelsRequest(
            name_contains=name_contains,
            tags=dict(tags or {}),
            include_deleted=include_deleted,
            page_size=1000,
        )
        return [RegisteredModel.of(m, self) for m in self._paged("SearchModels", req, "models")]

    def search_versions(
        self,
        model: str = "",
        *,
        stage: str | None = None,
        alias: str = "",
        run_id: str = "",
        tags: Mapping[str, str] | None = None,
        include_deleted: bool = False,
    ) -> list[ModelVersion]:
        statuses = [pb.VERSION_STATUS_READY, pb.VERSION_STATUS_DEPRECATED]
        if include_deleted:
            statuses.append(pb.VERSION_STATUS_DELETED)
        req = pb.SearchModelVersionsRequest(
            model=model,
            tags=dict(tags or {}),
            stage=stage_value(stage) if stage else pb.STAGE_UNSPECIFIED,
            alias=alias,
            run_id=run_id,
            statuses=statuses,
            page_size=1000,
        )
        return [ModelVersion.of(v, self) for v in self._paged("SearchModelVersions", req, "versions")]

    def register(
        self,
        run: _HasId | str | None,
        artifact: Any,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        framework: str = "",
        signature: str = "",
        create_model: bool = True,
    ) -> ModelVersion:
        run_id = run if isinstance(run, str) or run is None else run.id
        req = pb.CreateModelVersionRequest(
            model=name,
            run_id=run_id or "",
            artifact=artifact_ref(artifact),
            description=description,
            tags={str(k): str(v) for k, v in (tags or {}).items()},
            framework=framework,
            signature=signature,
            create_model=create_model,
        )
        return ModelVersion.of(self.call("CreateModelVersion", req).version, self)

    def set_policy(
        self,
        name: str,
        stage: str | None = None,
        *,
        approvals: int = 0,
        approver_role: str = "member",
        from_stages: Sequence[str] = (),
        allow_self_approval: bool = False,
        max_production_versions: int = 0,
    ) -> RegisteredModel:
        """Change what moving into `stage` takes (others keep theirs), and/or the Production limit."""
        policy = pb.ModelPolicy(max_production_versions=max_production_versions)
        if stage is not None:
            target = stage_value(stage)
            if target == pb.STAGE_NONE:
                raise InvalidArgument(
                    "a version never moves back to None; give Staging, Production or Archived"
                )
            part = pb.StagePolicy(
                approvals_required=approvals,
                approver_role=approver_role,
                from_stages=[stage_value(s) for s in from_stages],
                allow_self_approval=allow_self_approval,
            )
            getattr(policy, STAGE_NAMES[target].lower()).CopyFrom(part)
        return RegisteredModel.of(
            self.call("SetPolicy", pb.SetPolicyRequest(name=name, policy=policy)).model, self
        )

    def remove_alias(self, model: str, alias: str) -> int:
        return int(self.call("RemoveAlias", pb.RemoveAliasRequest(model=model, alias=alias)).version)

    def history(self, model: str, version: int = 0) -> list[HistoryEntry]:
        out: list[HistoryEntry] = []
        start = 0
        while True:
            resp = self.call(
                "History", pb.HistoryRequest(model=model, version=version, from_stream_version=start)
            )
            out.extend(
                HistoryEntry(
                    e.position, _when(e.recorded_at), e.actor, e.type, e.version, e.summary, e.payload_json
                )
                for e in resp.entries
            )
            start = resp.next_stream_version
            if not start:
                return out

    def requests(self, model: str, version: int = 0, open_only: bool = False) -> list[TransitionRequest]:
        req = pb.ListTransitionRequestsRequest(model=model, version=version, open_only=open_only)
        return [TransitionRequest.of(r) for r in self.call("ListTransitionRequests", req).requests]


def artifact_ref(artifact: Any) -> pb.ArtifactRef:
    """An artifact version: "name:v3", "name:alias", "name" (the latest), or an ArtifactVersion."""
    if not isinstance(artifact, str):
        return pb.ArtifactRef(name=artifact.name, version=artifact.version)
    from modelog.shared.artifacts.refs import parse_ref  # the rule the server applies too

    parsed = parse_ref(artifact, "artifact")
    return pb.ArtifactRef(name=parsed.name, version=parsed.version or 0, alias=parsed.alias or "")


class Models:
    """`models`: the registry through the connection `modelog.connect()` made."""

    def registry(self) -> Registry:
        from modelog._session import default

        return Registry(default()._online().conn)

    @overload
    def get(self, ref: str) -> ModelVersion: ...

    @overload
    def get(self, ref: str, *, as_of: datetime) -> ModelAsOf | VersionAsOf: ...

    def get(self, ref: str, *, as_of: datetime | None = None) -> ModelVersion | ModelAsOf | VersionAsOf:
        """A version: "churn/3", "churn@champion", or "churn" (the newest one).

        With `as_of`, time travel: "churn" is the whole model as it stood then (ModelAsOf: aliases,
        stages, who requested and approved), "churn/3" or "churn@champion" that version then."""
        if as_of is not None:
            return get_as_of(self.registry(), ref, as_of)
        return self.registry().get(ref)

    def model(self, name: str) -> RegisteredModel:
        return self.registry().model(name)

    def list(
        self, name_contains: str = "", tags: Mapping[str, str] | None = None
    ) -> builtins.list[RegisteredModel]:
        return self.registry().search_models(name_contains, tags)

    def search_versions(self, model: str = "", **filters: Any) -> builtins.list[ModelVersion]:
        return self.registry().search_versions(model, **filters)

    def create(
        self, name: str, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        return self.registry().create(name, description, tags)

    def history(self, model: str) -> builtins.list[HistoryEntry]:
        return self.registry().history(model)


models = Models()


def register_model(
    run: _HasId | str | None,
    artifact: Any,
    name: str,
    *,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    framework: str = "",
    signature: str = "",
) -> ModelVersion:
    """Register `artifact` (a model package logged with modelog.artifacts) as the next version of model
    `name`, created if it does not exist. `run` (an ActiveRun, a RunData or a run id) may be None when
    the artifact version names the run that produced it."""
    return models.registry().register(
        run, artifact, name, description=description, tags=tags, framework=framework, signature=signature
    )
