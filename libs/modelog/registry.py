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
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, overload

from google.protobuf.message import Message

from modelog._client import Connection
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._time import when as _when
from modelog.asof import ModelAsOf, VersionAsOf, get_as_of
from modelog.errors import InvalidArgument
from modelog.registryobjects import (
    Approval,
    HistoryEntry,
    Lineage,
    ModelVersion,
    RegisteredModel,
    TransitionRequest,
)
from modelog.registryrefs import (
    STAGE_NAMES,
    STAGES,
    STATUS_NAMES,
    artifact_ref,
    parse_model_ref,
    stage_value,
)

__all__ = [
    "STAGES",
    "STAGE_NAMES",
    "STATUS_NAMES",
    "Approval",
    "HistoryEntry",
    "Lineage",
    "ModelVersion",
    "Models",
    "RegisteredModel",
    "Registry",
    "TransitionRequest",
    "artifact_ref",
    "models",
    "parse_model_ref",
    "register_model",
    "stage_value",
]


class _HasId(Protocol):
    id: str


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
        self,
        name_contains: str = "",
        tags: Mapping[str, str] | None = None,
        include_deleted: bool = False,
        *,
        filter: str = "",
        order_by: Sequence[str] = (),
    ) -> list[RegisteredModel]:
        """Models by name, tags and `filter`, MLflow's grammar with OR, NOT and parentheses
        (`"name LIKE 'churn%' OR tags.team = 'nlp'"`), in `order_by` ("name ASC"); newest first."""
        req = pb.SearchModelsRequest(
            name_contains=name_contains,
            tags=dict(tags or {}),
            include_deleted=include_deleted,
            page_size=1000,
            filter=filter,
            order_by=list(order_by),
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
        filter: str = "",
        order_by: Sequence[str] = (),
    ) -> list[ModelVersion]:
        """Versions by the fields given and `filter` ("version > 3 AND tags.ok = 'yes'"), in
        `order_by` ("version DESC"); newest first."""
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
            filter=filter,
            order_by=list(order_by),
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


class Models:
    """`models`: the registry through the connection `modelog.connect()` made, or `client.models`
    through that client's."""

    def __init__(self, conn: Connection | None = None) -> None:
        self._conn = conn

    def registry(self) -> Registry:
        if self._conn is not None:
            return Registry(self._conn)
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
        self, name_contains: str = "", tags: Mapping[str, str] | None = None, *, filter: str = ""
    ) -> builtins.list[RegisteredModel]:
        return self.registry().search_models(name_contains, tags, filter=filter)

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
