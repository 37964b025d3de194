"""gRPC Registry: requests become commands for the model decider, replies come from the inline views.

No rule lives here. What this layer adds is what the rules cannot know: ids, who calls (the actor and
roles of the request's token), the name claims around creates and renames, the run and artifact
version fetched from the tracking and artifacts services, and turning names, aliases and "latest"
into a model id and a version number.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc
from pydantic import ValidationError

from eventlog import (
    AlreadyExists,
    DomainEvent,
    EventStore,
    InvalidArgument,
    Metadata,
    NotFound,
)
from eventlog.commandpath import CommandPath, Executed, Route, command_map, derive_key, new_id
from eventlog.nameclaims import UniqueNames
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog_platform import context
from modelog_platform.access import project_name
from modelog_platform.authz import DEFAULT_PROJECT
from modelog_platform.grpc_errors import from_validation_error

from . import domain as d
from . import reads
from .events import (
    AliasRemoved,
    AliasSet,
    ModelRenamed,
    ModelVersionCreated,
    StagePolicy,
    TransitionApproved,
    TransitionCancelled,
    TransitionRejected,
    TransitionRequested,
    VersionStageChanged,
    registry,
)
from .peers import Peers
from .queries import RegistryQueries

E = TypeVar("E", bound=DomainEvent)


def _writer() -> d.Actor:
    """The caller, with what it holds on the model (the permission table checked it may act)."""
    rc = context.current()
    return d.Actor(rc.actor, frozenset(rc.perms))


def _metadata(scope: str) -> Metadata:
    """Event metadata of this request, its idempotency key scoped to one kind of append."""
    rc = context.current()
    return rc.metadata().model_copy(update={"idempotency_key": derive_key(scope, rc.idempotency_key)})


class _Renamed(NotFound):
    """The model a cached name pointed at has another name now."""


def _named(name: str) -> Callable[[d.ModelState], None]:
    def check(state: d.ModelState) -> None:
        if state.name != name:
            raise _Renamed(f"no model named {name!r}")

    return check


def _of(events: Sequence[DomainEvent], cls: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, cls)]


def _stage(value: int, field: str = "stage") -> str:
    name = reads.STAGE_NAME.get(value)  # type: ignore[call-overload]
    if name is None or name == "None":
        raise InvalidArgument.field(field, "give the stage to move to: STAGING, PRODUCTION or ARCHIVED")
    return str(name)


def _stage_policy(p: pb.StagePolicy, field: str) -> StagePolicy:
    stages = []
    for i, s in enumerate(p.from_stages):
        if s not in reads.STAGE_NAME:
            raise InvalidArgument.field(f"{field}.from_stages[{i}]", f"{s} is not a stage")
        stages.append(reads.STAGE_NAME[s])
    try:
        return StagePolicy(
            approvals_required=p.approvals_required,
            approver_role=p.approver_role or "member",  # type: ignore[arg-type]
            from_stages=tuple(stages),  # type: ignore[arg-type]
            allow_self_approval=p.allow_self_approval,
        )
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=f"{field}.") from None


class RegistryServicer(RegistryQueries):
    def __init__(self, store: EventStore, peers: Peers) -> None:
        self.store = store
        self.commands = CommandPath(
            store,
            events=registry,
            routes=command_map((d.ModelCommand, Route(d.model_decider, d.model_stream_id))),
        )
        self.names = UniqueNames(self.commands, d.name_claim_decider, d.model_name_stream_id)
        self.peers = peers
        self._ids: dict[str, str] = {}

    # ------------------------------------------------------------ plumbing

    async def _on_model(
        self, model_id: str, scope: str, cmd: d.ModelCommand, name: str | None = None
    ) -> Executed[d.ModelState]:
        """`cmd` on a model's stream; with `name`, refused unless the model still has that name."""
        check = None if name is None else _named(name)
        return await self.commands.send(model_id, cmd, _metadata(scope), check=check)

    async def _on_name(
        self, name: str, scope: str, cmd: d.ModelCommand, field: str = "model"
    ) -> tuple[str, Executed[d.ModelState]]:
        """`cmd` on the model named `name`. The cached id is confirmed by the model's own state when the
        command is decided; after a rename the name is looked up again."""
        model_id = await self._model_id(name, field)
        try:
            return model_id, await self._on_model(model_id, scope, cmd, name)
        except _Renamed:
            model_id = await self._model_id(name, field, fresh=True)
            return model_id, await self._on_model(model_id, scope, cmd, name)

    async def _on_ref(
        self, ref: pb.VersionRef, scope: str, make: Callable[[int], d.ModelCommand]
    ) -> tuple[str, int, Executed[d.ModelState]]:
        """`make(version)` on the version a reference names (by number, alias or "latest")."""
        if ref.version > 0:
            model_id, done = await self._on_name(ref.model, scope, make(ref.version), "ref.model")
            return model_id, ref.version, done
        async with self.pool.acquire() as conn:
            row = await reads.version_row(conn, ref.model, ref.version, ref.alias)
        model_id, n = str(row["model_id"]), int(row["version"])
        return model_id, n, await self._on_model(model_id, scope, make(n), ref.model)

    async def _create_model(self, scope: str, cmd: d.RegisterModel) -> None:
        d.model_decider.decide(cmd, d.ModelState())  # bad input fails before the name is claimed
        await self.names.create(
            cmd.name, cmd.model_id, lambda: self._on_model(cmd.model_id, scope, cmd), _metadata(scope)
        )

    async def _rename(self, old: str, new: str, model_id: str, cmd: d.RenameModel) -> None:
        def previous(done: Executed[d.ModelState]) -> list[str]:
            return [e.previous_name for e in _of(done.events, ModelRenamed)]  # its name when it landed

        metadata = _metadata("RenameModel")
        await self.names.rename(
            new, model_id, lambda: self._on_model(model_id, "RenameModel", cmd), previous, metadata
        )
        self._ids.pop(old, None)

    # ------------------------------------------------------------ models

    async def CreateModel(
        self, request: pb.CreateModelRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.CreateModelResponse:
        _writer()
        model_id = new_id("CreateModel", context.current().idempotency_key)
        project = project_name(request.project or DEFAULT_PROJECT)
        cmd = d.RegisterModel(model_id, request.name, request.description, dict(request.tags), project)
        await self._create_model("CreateModel", cmd)
        return pb.CreateModelResponse(model=await self._model(model_id))

    async def RenameModel(
        self, request: pb.RenameModelRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RenameModelResponse:
        _writer()
        model_id = await self._model_id(request.name)
        cmd = d.RenameModel(request.new_name)
        state, _ = await self.commands.state(d.RenameModel, model_id)
        try:
            changes = d.model_decider.decide(cmd, state)  # bad input or an unchanged name: nothing to claim
        except InvalidArgument as exc:
            exc.violations = [type(v)("new_name", v.description) for v in exc.violations]
            raise
        if changes:
            await self._rename(request.name, request.new_name, model_id, cmd)
        return pb.RenameModelResponse(model=await self._model(model_id))

    async def SetModelDescription(
        self, request: pb.SetModelDescriptionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SetModelDescriptionResponse:
        _writer()
        model_id, _ = await self._on_name(
            request.name, "SetModelDescription", d.DescribeModel(request.description), "name"
        )
        return pb.SetModelDescriptionResponse(model=await self._model(model_id))

    async def SetModelTags(
        self, request: pb.SetModelTagsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SetModelTagsResponse:
        _writer()
        cmd = d.SetModelTags(dict(request.tags), list(request.delete_keys))
        model_id, _ = await self._on_name(request.name, "SetModelTags", cmd, "name")
        return pb.SetModelTagsResponse(model=await self._model(model_id))

    async def DeleteModel(
        self, request: pb.DeleteModelRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.DeleteModelResponse:
        actor = _writer()
        model_id, _ = await self._on_name(request.name, "DeleteModel", d.DeleteModel(actor), "name")
        return pb.DeleteModelResponse(model=await self._model(model_id))

    async def RestoreModel(
        self, request: pb.RestoreModelRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RestoreModelResponse:
        _writer()
        model_id, _ = await self._on_name(request.name, "RestoreModel", d.RestoreModel(), "name")
        return pb.RestoreModelResponse(model=await self._model(model_id))

    async def SetPolicy(
        self, request: pb.SetPolicyRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SetPolicyResponse:
        actor = _writer()
        p = request.policy
        cmd = d.SetPolicy(
            actor,
            staging=_stage_policy(p.staging, "policy.staging") if p.HasField("staging") else None,
            production=_stage_policy(p.production, "policy.production") if p.HasField("production") else None,
            archived=_stage_policy(p.archived, "policy.archived") if p.HasField("archived") else None,
            max_production_versions=p.max_production_versions or None,
        )
        model_id, _ = await self._on_name(request.name, "SetPolicy", cmd, "name")
        return pb.SetPolicyResponse(model=await self._model(model_id))

    # ------------------------------------------------------------ versions

    async def _lineage_inputs(self, request: pb.CreateModelVersionRequest) -> d.CreateVersion:
        a = request.artifact
        if not a.name:
            raise InvalidArgument.field("artifact.name", "name the artifact version the model is made of")
        if a.version < 0:
            raise InvalidArgument.field("artifact.version", "must be >= 1 (0: by alias, or the latest)")
        run_id = request.run_id and d.check_id("run_id", request.run_id)
        if run_id:
            artifact, (run, deleted) = await asyncio.gather(
                self.peers.artifact(a.name, a.version, a.alias), self.peers.run(run_id)
            )
        else:
            artifact = await self.peers.artifact(a.name, a.version, a.alias)
            if not artifact.run_id:
                raise InvalidArgument.field(
                    "run_id",
                    f"artifact {artifact.name}:v{artifact.version} names no run; "
                    "give the run that produced the model",
                )
            run, deleted = await self.peers.run(artifact.run_id)
        return d.CreateVersion(
            run=run,
            artifact=artifact,
            run_deleted=deleted,
            description=request.description,
            tags=dict(request.tags),
            framework=request.framework,
            signature=request.signature,
        )

    async def CreateModelVersion(
        self, request: pb.CreateModelVersionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.CreateModelVersionResponse:
        _writer()
        name = d.check_model_name(request.model, "model")
        cmd = await self._lineage_inputs(request)
        d.model_decider.decide(cmd, d.ModelState(model_id="-", name=name))  # refusals before creating a model
        try:
            await self._model_id(name)
        except NotFound:
            if not request.create_model:
                raise NotFound(
                    f"no model named {name!r} (set create_model to register it with this version)"
                ) from None
            model_id = new_id("CreateModelVersion.model", context.current().idempotency_key)
            with contextlib.suppress(AlreadyExists):  # registered concurrently by another call: use that one
                project = project_name(request.project or DEFAULT_PROJECT)
                register = d.RegisterModel(model_id, name, project=project)
                await self._create_model("CreateModelVersion.model", register)
        model_id, done = await self._on_name(name, "CreateModelVersion", cmd)
        number = _of(done.events, ModelVersionCreated)[0].version
        return pb.CreateModelVersionResponse(version=await self._version(model_id, number))

    async def AnnotateVersion(
        self, request: pb.AnnotateVersionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.AnnotateVersionResponse:
        _writer()
        description = request.description if request.HasField("description") else None
        tags, gone = dict(request.tags), list(request.delete_tag_keys)
        model_id, n, _ = await self._on_ref(
            request.ref, "AnnotateVersion", lambda n: d.AnnotateVersion(n, description, tags, gone)
        )
        return pb.AnnotateVersionResponse(version=await self._version(model_id, n))

    async def DeprecateVersion(
        self, request: pb.DeprecateVersionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.DeprecateVersionResponse:
        actor = _writer()
        model_id, n, _ = await self._on_ref(
            request.ref, "DeprecateVersion", lambda n: d.DeprecateVersion(n, actor, request.reason)
        )
        return pb.DeprecateVersionResponse(version=await self._version(model_id, n))

    async def DeleteModelVersion(
        self, request: pb.DeleteModelVersionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.DeleteModelVersionResponse:
        actor = _writer()
        model_id, n, _ = await self._on_ref(
            request.ref, "DeleteModelVersion", lambda n: d.DeleteVersion(n, actor)
        )
        return pb.DeleteModelVersionResponse(version=await self._version(model_id, n))

    # ------------------------------------------------------------ aliases

    async def SetAlias(
        self, request: pb.SetAliasRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SetAliasResponse:
        _writer()
        if request.version <= 0:
            raise InvalidArgument.field("version", "give the version number the alias should point at")
        cmd = d.SetAlias(request.alias, request.version)
        model_id, done = await self._on_name(request.model, "SetAlias", cmd)
        moved = _of(done.events, AliasSet)
        previous = (moved[0].previous or 0) if moved else request.version
        return pb.SetAliasResponse(
            version=await self._version(model_id, request.version), previous_version=previous
        )

    async def RemoveAlias(
        self, request: pb.RemoveAliasRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RemoveAliasResponse:
        _writer()
        _, done = await self._on_name(request.model, "RemoveAlias", d.RemoveAlias(request.alias))
        return pb.RemoveAliasResponse(version=_of(done.events, AliasRemoved)[0].version)

    # ------------------------------------------------------------ transitions

    async def _request_reply(
        self, model_id: str, version: int, request_id: str
    ) -> tuple[pb.ModelVersion, pb.TransitionRequest]:
        """The version and the request the command was about, in one query."""
        async with self.pool.acquire() as conn:
            return await reads.version_and_request(conn, model_id, version, request_id)

    async def RequestTransition(
        self, request: pb.RequestTransitionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RequestTransitionResponse:
        actor = _writer()
        stage = _stage(request.stage)
        request_id = new_id("RequestTransition", context.current().idempotency_key)[:16]
        model_id, n, done = await self._on_ref(
            request.ref,
            "RequestTransition",
            lambda n: d.RequestTransition(request_id, n, stage, actor, request.comment),
        )
        version, req = await self._request_reply(
            model_id, n, _of(done.events, TransitionRequested)[0].request_id
        )
        return pb.RequestTransitionResponse(request=req, version=version)

    async def ApproveTransition(
        self, request: pb.ApproveTransitionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ApproveTransitionResponse:
        actor = _writer()
        model_id, n, done = await self._on_ref(
            request.ref,
            "ApproveTransition",
            lambda n: d.ApproveTransition(n, actor, request.request_id or None, request.comment),
        )
        version, req = await self._request_reply(
            model_id, n, _of(done.events, TransitionApproved)[0].request_id
        )
        archived = [e.version for e in _of(done.events, VersionStageChanged) if e.version != n]
        return pb.ApproveTransitionResponse(request=req, version=version, archived_versions=archived)

    async def RejectTransition(
        self, request: pb.RejectTransitionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RejectTransitionResponse:
        actor = _writer()
        model_id, n, done = await self._on_ref(
            request.ref,
            "RejectTransition",
            lambda n: d.RejectTransition(n, actor, request.request_id or None, request.comment),
        )
        _, req = await self._request_reply(model_id, n, _of(done.events, TransitionRejected)[0].request_id)
        return pb.RejectTransitionResponse(request=req)

    async def CancelTransition(
        self, request: pb.CancelTransitionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.CancelTransitionResponse:
        actor = _writer()
        model_id, n, done = await self._on_ref(
            request.ref,
            "CancelTransition",
            lambda n: d.CancelTransition(n, actor, request.request_id or None, request.comment),
        )
        _, req = await self._request_reply(model_id, n, _of(done.events, TransitionCancelled)[0].request_id)
        return pb.CancelTransitionResponse(request=req)

    async def CommentOnVersion(
        self, request: pb.CommentOnVersionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.CommentOnVersionResponse:
        _writer()
        await self._on_ref(
            request.ref,
            "CommentOnVersion",
            lambda n: d.CommentOnVersion(n, request.comment, request.request_id or None),
        )
        return pb.CommentOnVersionResponse()

    # ------------------------------------------------------------ lineage and history
