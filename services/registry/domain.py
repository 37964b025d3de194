"""The registry's rules as deciders: a registered model with all its versions, aliases and stage
transitions (one aggregate, one stream), and model-name claims.

Why one aggregate: "an alias points at exactly one version", "at most N versions in Production",
"one open request per version" and "approving into Production archives the previous one in the same
decision" all span versions of one model. Deciding them on the model's whole state and appending with
its stream version makes each decision atomic; a concurrent writer conflicts and decides again.

Names are unique across models, which no model stream can know: the service claims the name in its
own stream (`model_name_stream_id`) before registering or renaming a model, as tracking does for
experiment names. A deleted model keeps its name.

Who acts comes in on the command (`Actor`: the token's name and roles), never from ambient state, so
the approval rules stay pure and testable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, NoReturn

from eventlog import (
    AlreadyExists,
    Decider,
    DomainEvent,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from modelog.shared.inputs import parse_json

from .events import (
    TARGET_STAGES,
    AliasRemoved,
    AliasSet,
    ArtifactLineage,
    ModelDeleted,
    ModelDescribed,
    ModelNameClaimed,
    ModelNameReleased,
    ModelPolicy,
    ModelRegistered,
    ModelRenamed,
    ModelRestored,
    ModelTagsSet,
    ModelVersionCreated,
    PolicySet,
    RunLineage,
    Stage,
    StagePolicy,
    TargetStage,
    TransitionApproved,
    TransitionCancelled,
    TransitionRejected,
    TransitionRequested,
    VersionAnnotated,
    VersionCommented,
    VersionDeleted,
    VersionDeprecated,
    VersionStageChanged,
    VersionStatus,
)

MAX_NAME = 250
MAX_DESCRIPTION = 65_536
MAX_TAGS = 100
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 5_000
MAX_COMMENT = 5_000
MAX_FRAMEWORK = 100
MAX_SIGNATURE = 65_536
MAX_ALIASES = 100
MAX_STREAM_ID = 200  # eventlog.store's limit
LATEST = "latest"

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,248}[A-Za-z0-9._-])?\Z")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}\Z")
_VERSIONISH = re.compile(r"^v\d+\Z")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_TAG_KEY = re.compile(r"^[\w.\-/: ]+\Z")
_REQUIRES = {"viewer": "READ", "member": "EDIT", "approver": "APPROVE", "admin": "MANAGE"}
_ROLE_PERMS = {
    "viewer": ("READ",),
    "member": ("READ", "EDIT"),
    "admin": ("READ", "EDIT", "APPROVE", "MANAGE"),
}

RequestStatus = Literal["OPEN", "APPROVED", "REJECTED", "CANCELLED"]

# ---------------------------------------------------------------- validation


def _invalid(name: str, why: str) -> NoReturn:
    raise InvalidArgument.field(name, why)


def check_model_name(value: str, field_name: str = "name") -> str:
    if not value:
        _invalid(field_name, "a model name is required")
    if len(value) > MAX_NAME or not _NAME.match(value):
        _invalid(
            field_name,
            f"{value[:300]!r} is not a model name: 1-{MAX_NAME} of A-Z a-z 0-9 . _ - and spaces, "
            "starting with a letter or digit and not ending with a space",
        )
    return value


def check_alias(value: str, field_name: str = "alias") -> str:
    if value == LATEST:
        _invalid(field_name, "'latest' always means the newest version and cannot be set or removed")
    if _VERSIONISH.match(value):
        _invalid(field_name, f"{value!r} looks like a version number; pick a name such as 'champion'")
    if not _ALIAS.match(value):
        _invalid(field_name, f"{value[:100]!r} is not an alias: 1-64 of a-z 0-9 _ -, starting with a letter")
    return value


def check_id(field_name: str, value: str) -> str:
    if not _ID.match(value):
        _invalid(
            field_name, f"{value[:200]!r} is not an id: 1-128 of A-Z a-z 0-9 . _ -, starting alphanumeric"
        )
    return value


def check_text(field_name: str, value: str, limit: int) -> str:
    if len(value) > limit:
        _invalid(field_name, f"is {len(value)} characters long; the limit is {limit}")
    return value


def check_tags(field_name: str, tags: Mapping[str, str], keys: Sequence[str] = ()) -> None:
    if len(tags) + len(keys) > MAX_TAGS:
        _invalid(field_name, f"{len(tags) + len(keys)} tags in one call; the limit is {MAX_TAGS}")
    for key in [*tags, *keys]:
        if not key or len(key) > MAX_TAG_KEY or not _TAG_KEY.match(key):
            _invalid(
                f"{field_name}[{key[:100]!r}]",
                f"a tag key is 1-{MAX_TAG_KEY} of letters, digits, '_', '-', '.', ' ', ':' and '/'",
            )
    for key, value in tags.items():
        check_text(f"{field_name}[{key!r}]", value, MAX_TAG_VALUE)


def check_signature(value: str) -> None:
    check_text("signature", value, MAX_SIGNATURE)
    if value:
        try:
            parse_json(value)
        except ValueError as exc:
            _invalid("signature", f"is not JSON: {exc}")


def check_policy(policy: ModelPolicy) -> None:
    for stage in TARGET_STAGES:
        p = policy.for_stage(stage)
        where = f"policy.{stage.lower()}"
        if not p.from_stages:
            _invalid(f"{where}.from_stages", f"name at least one stage a version may enter {stage} from")
        if stage in p.from_stages:
            _invalid(f"{where}.from_stages", f"a version cannot move from {stage} to {stage}")


# ---------------------------------------------------------------- stream ids


def model_stream_id(model_id: str) -> str:
    return f"model-{model_id}"


def model_name_stream_id(name: str) -> str:
    """`model-name-<name>`; a name the log cannot hold as a stream id uses `model-name#sha256:<hex>`."""
    plain = f"model-name-{name}"
    if len(plain) <= MAX_STREAM_ID and plain.isprintable():
        return plain
    return f"model-name#sha256:{hashlib.sha256(name.encode()).hexdigest()}"


# ---------------------------------------------------------------- who acts


@dataclass(frozen=True)
class Actor:
    """Who acts, with the permissions it holds on this model (found by the permission table)."""

    name: str
    perms: frozenset[str] = frozenset()

    @classmethod
    def of_roles(cls, name: str, *roles: str) -> Actor:
        """An actor holding what these roles give everywhere (viewer: READ, member: EDIT, admin: all)."""
        return cls(name, frozenset(p for r in roles for p in _ROLE_PERMS.get(r, ())))

    def holds(self, requirement: str) -> bool:
        """A policy's approver requirement: member = EDIT, approver = APPROVE, admin = MANAGE."""
        return _REQUIRES[requirement] in self.perms


SYSTEM = Actor.of_roles("system", "admin")

# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class RegisterModel:
    model_id: str
    name: str
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    project: str = "default"


@dataclass(frozen=True)
class RenameModel:
    name: str


@dataclass(frozen=True)
class DescribeModel:
    description: str


@dataclass(frozen=True)
class SetModelTags:
    tags: Mapping[str, str]
    delete_keys: Sequence[str] = ()


@dataclass(frozen=True)
class DeleteModel:
    actor: Actor = SYSTEM


@dataclass(frozen=True)
class RestoreModel:
    pass


@dataclass(frozen=True)
class SetPolicy:
    """Changes the parts given; None keeps the part as it is."""

    actor: Actor
    staging: StagePolicy | None = None
    production: StagePolicy | None = None
    archived: StagePolicy | None = None
    max_production_versions: int | None = None


@dataclass(frozen=True)
class CreateVersion:
    run: RunLineage
    artifact: ArtifactLineage
    run_deleted: bool = False
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    framework: str = ""
    signature: str = ""


@dataclass(frozen=True)
class AnnotateVersion:
    version: int
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    delete_tag_keys: Sequence[str] = ()


@dataclass(frozen=True)
class DeprecateVersion:
    version: int
    actor: Actor = SYSTEM
    reason: str = ""


@dataclass(frozen=True)
class DeleteVersion:
    version: int
    actor: Actor = SYSTEM


@dataclass(frozen=True)
class SetAlias:
    alias: str
    version: int


@dataclass(frozen=True)
class RemoveAlias:
    alias: str


@dataclass(frozen=True)
class RequestTransition:
    request_id: str
    version: int
    to_stage: str
    actor: Actor
    comment: str = ""


@dataclass(frozen=True)
class ApproveTransition:
    version: int
    actor: Actor
    request_id: str | None = None
    comment: str = ""


@dataclass(frozen=True)
class RejectTransition:
    version: int
    actor: Actor
    request_id: str | None = None
    comment: str = ""


@dataclass(frozen=True)
class CancelTransition:
    version: int
    actor: Actor
    request_id: str | None = None
    comment: str = ""


@dataclass(frozen=True)
class CommentOnVersion:
    version: int
    comment: str
    request_id: str | None = None


ModelCommand = (
    RegisterModel
    | RenameModel
    | DescribeModel
    | SetModelTags
    | DeleteModel
    | RestoreModel
    | SetPolicy
    | CreateVersion
    | AnnotateVersion
    | DeprecateVersion
    | DeleteVersion
    | SetAlias
    | RemoveAlias
    | RequestTransition
    | ApproveTransition
    | RejectTransition
    | CancelTransition
    | CommentOnVersion
)

# ---------------------------------------------------------------- state


@dataclass(frozen=True)
class VersionState:
    version: int
    run_id: str
    stage: Stage = "None"
    status: VersionStatus = "READY"
    entered_stage: int = 0
    """The model's stage-change counter when this version entered its stage (oldest first)."""
    open_request: str | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestState:
    request_id: str
    version: int
    from_stage: Stage
    to_stage: TargetStage
    by: str
    approvals_required: int
    approver_role: str
    allow_self_approval: bool
    approvals: tuple[str, ...] = ()
    status: RequestStatus = "OPEN"


@dataclass(frozen=True)
class ModelState:
    model_id: str = ""
    name: str = ""
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    deleted: bool = False
    policy: ModelPolicy = field(default_factory=ModelPolicy)
    versions: Mapping[int, VersionState] = field(default_factory=dict)
    latest_version: int = 0
    aliases: Mapping[str, int] = field(default_factory=dict)
    requests: Mapping[str, RequestState] = field(default_factory=dict)
    stage_changes: int = 0

    @property
    def exists(self) -> bool:
        return bool(self.model_id)

    def in_production(self) -> list[VersionState]:
        """Versions in Production, the one that entered first first."""
        found = [v for v in self.versions.values() if v.stage == "Production"]
        return sorted(found, key=lambda v: v.entered_stage)

    def aliases_of(self, version: int) -> list[str]:
        return sorted(a for a, v in self.aliases.items() if v == version)


# ---------------------------------------------------------------- decide


def _ref(state: ModelState, version: int) -> str:
    return f"version {version} of model {state.name!r}"


def _version(state: ModelState, number: int) -> VersionState:
    """A version that exists and is not deleted."""
    v = state.versions.get(number)
    if v is None:
        latest = f"its versions are 1 to {state.latest_version}" if state.latest_version else "it has none"
        raise NotFound(f"model {state.name!r} has no version {number} ({latest})")
    if v.status == "DELETED":
        raise FailedPrecondition(f"{_ref(state, number)} is deleted")
    return v


def _changed_tags(
    current: Mapping[str, str], tags: Mapping[str, str], delete: Sequence[str], what: str
) -> tuple[dict[str, str], tuple[str, ...]]:
    for key in delete:
        if key not in current and key not in tags:
            raise NotFound(f"{what} has no tag {key!r}")
    changed = {k: v for k, v in tags.items() if current.get(k) != v}
    gone = tuple(dict.fromkeys(k for k in delete if k in current and k not in tags))
    return changed, gone


def _register(cmd: RegisterModel, state: ModelState) -> list[DomainEvent]:
    if state.exists:
        raise AlreadyExists(f"model {state.name!r} already exists (id {state.model_id})")
    check_id("model_id", cmd.model_id)
    check_model_name(cmd.name)
    check_text("description", cmd.description, MAX_DESCRIPTION)
    check_tags("tags", cmd.tags)
    return [
        ModelRegistered(
            model_id=cmd.model_id,
            name=cmd.name,
            description=cmd.description,
            tags=dict(cmd.tags),
            project=cmd.project,
        )
    ]


def _cancel_open(state: ModelState, v: VersionState, by: str, reason: str) -> list[DomainEvent]:
    if v.open_request is None:
        return []
    return [TransitionCancelled(request_id=v.open_request, version=v.version, by=by, reason=reason)]


def _delete_model(cmd: DeleteModel, state: ModelState) -> list[DomainEvent]:
    live = state.in_production()
    if live:
        numbers = ", ".join(str(v.version) for v in live)
        raise FailedPrecondition(
            f"model {state.name!r} has version {numbers} in Production; archive it before deleting the model"
        )
    events: list[DomainEvent] = []
    for v in state.versions.values():
        events += _cancel_open(state, v, cmd.actor.name, f"model {state.name!r} was deleted")
    return [*events, ModelDeleted()]


def _set_policy(cmd: SetPolicy, state: ModelState) -> list[DomainEvent]:
    if not cmd.actor.holds("admin"):
        raise PermissionDenied(
            f"{cmd.actor.name!r} may not change the policy of model {state.name!r}: "
            "it needs MANAGE on the model (the admin role, or a MANAGE grant)"
        )
    old = state.policy
    if cmd.max_production_versions is not None and not 1 <= cmd.max_production_versions <= 100:
        _invalid("policy.max_production_versions", "must be 1 to 100")
    policy = ModelPolicy(
        staging=cmd.staging or old.staging,
        production=cmd.production or old.production,
        archived=cmd.archived or old.archived,
        max_production_versions=cmd.max_production_versions or old.max_production_versions,
    )
    check_policy(policy)
    return [] if policy == old else [PolicySet(policy=policy, previous=old)]


def _create_version(cmd: CreateVersion, state: ModelState) -> list[DomainEvent]:
    a, run = cmd.artifact, cmd.run
    artifact = f"artifact {a.name}:v{a.version}"
    if a.kind == "dataset":
        raise FailedPrecondition(f"{artifact} is a dataset; a model version is made from a model artifact")
    if a.run_id and a.run_id != run.run_id:
        raise FailedPrecondition(
            f"{artifact} was produced by run {a.run_id!r}, not run {run.run_id!r}; "
            "register it with the run that produced it"
        )
    if cmd.run_deleted:
        raise FailedPrecondition(
            f"run {run.run_id!r} is deleted; restore it before registering a model from it"
        )
    check_text("description", cmd.description, MAX_DESCRIPTION)
    check_tags("tags", cmd.tags)
    check_text("framework", cmd.framework, MAX_FRAMEWORK)
    check_signature(cmd.signature)
    return [
        ModelVersionCreated(
            version=state.latest_version + 1,
            run=run,
            artifact=a,
            description=cmd.description,
            tags=dict(cmd.tags),
            framework=cmd.framework,
            signature=cmd.signature,
        )
    ]


def _annotate(cmd: AnnotateVersion, state: ModelState) -> list[DomainEvent]:
    v = _version(state, cmd.version)
    if cmd.description is not None:
        check_text("description", cmd.description, MAX_DESCRIPTION)
    check_tags("tags", cmd.tags, cmd.delete_tag_keys)
    tags, gone = _changed_tags(v.tags, cmd.tags, cmd.delete_tag_keys, _ref(state, v.version))
    description = None if cmd.description in (None, v.description) else cmd.description
    if description is None and not tags and not gone:
        return []
    return [VersionAnnotated(version=v.version, description=description, tags=tags, deleted_tag_keys=gone)]


def _refuse_if_live(state: ModelState, v: VersionState, doing: str) -> None:
    if v.stage == "Production":
        raise FailedPrecondition(f"{_ref(state, v.version)} is in Production; archive it before {doing} it")
    aliases = state.aliases_of(v.version)
    if aliases:
        names = ", ".join(aliases)
        raise FailedPrecondition(
            f"{_ref(state, v.version)} is the target of alias {names}; move or remove it before {doing} it"
        )


def _deprecate(cmd: DeprecateVersion, state: ModelState) -> list[DomainEvent]:
    v = _version(state, cmd.version)
    if v.status == "DEPRECATED":
        raise FailedPrecondition(f"{_ref(state, v.version)} is already deprecated")
    check_text("reason", cmd.reason, MAX_COMMENT)
    _refuse_if_live(state, v, "deprecating")
    cancelled = _cancel_open(state, v, cmd.actor.name, f"version {v.version} was deprecated")
    return [*cancelled, VersionDeprecated(version=v.version, reason=cmd.reason)]


def _delete_version(cmd: DeleteVersion, state: ModelState) -> list[DomainEvent]:
    v = _version(state, cmd.version)
    _refuse_if_live(state, v, "deleting")
    cancelled = _cancel_open(state, v, cmd.actor.name, f"version {v.version} was deleted")
    return [*cancelled, VersionDeleted(version=v.version)]


def _set_alias(cmd: SetAlias, state: ModelState) -> list[DomainEvent]:
    check_alias(cmd.alias)
    v = _version(state, cmd.version)
    if v.status == "DEPRECATED":
        raise FailedPrecondition(f"{_ref(state, v.version)} is deprecated; an alias cannot point at it")
    previous = state.aliases.get(cmd.alias)
    if previous == v.version:
        return []
    if previous is None and len(state.aliases) >= MAX_ALIASES:
        raise FailedPrecondition(f"model {state.name!r} already has {MAX_ALIASES} aliases; remove one first")
    return [AliasSet(alias=cmd.alias, version=v.version, previous=previous)]


def _remove_alias(cmd: RemoveAlias, state: ModelState) -> list[DomainEvent]:
    check_alias(cmd.alias)
    version = state.aliases.get(cmd.alias)
    if version is None:
        raise NotFound(f"model {state.name!r} has no alias {cmd.alias!r}")
    return [AliasRemoved(alias=cmd.alias, version=version)]


def _move(state: ModelState, v: VersionState, to: TargetStage, request_id: str, by: str) -> list[DomainEvent]:
    """The stage change a completed request makes, archiving the oldest Production versions first when
    the policy's limit would be exceeded (and closing their own open requests)."""
    events: list[DomainEvent] = []
    if to == "Production":
        current = [p for p in state.in_production() if p.version != v.version]
        excess = len(current) + 1 - state.policy.max_production_versions
        for old in current[: max(0, excess)]:
            why = f"version {old.version} was archived when version {v.version} entered Production"
            events += _cancel_open(state, old, by, why)
            events.append(
                VersionStageChanged(
                    version=old.version,
                    from_stage="Production",
                    to_stage="Archived",
                    request_id=request_id,
                    reason=f"replaced by version {v.version}",
                )
            )
    events.append(
        VersionStageChanged(version=v.version, from_stage=v.stage, to_stage=to, request_id=request_id)
    )
    return events


def _target(value: str) -> TargetStage:
    for stage in TARGET_STAGES:
        if value == stage:
            return stage
    raise InvalidArgument.field(
        "stage", f"{value!r} is not a stage to move to; use {', '.join(TARGET_STAGES)}"
    )


def _request(cmd: RequestTransition, state: ModelState) -> list[DomainEvent]:
    check_id("request_id", cmd.request_id)
    to = _target(cmd.to_stage)
    check_text("comment", cmd.comment, MAX_COMMENT)
    v = _version(state, cmd.version)
    ref = _ref(state, v.version)
    if cmd.request_id in state.requests:
        raise AlreadyExists(f"model {state.name!r} already has a transition request {cmd.request_id!r}")
    if v.stage == to:
        raise FailedPrecondition(f"{ref} is already in {to}")
    if v.status == "DEPRECATED" and to != "Archived":
        raise FailedPrecondition(f"{ref} is deprecated; it can only be archived")
    if v.open_request is not None:
        open_ = state.requests[v.open_request]
        raise FailedPrecondition(
            f"{ref} already has an open request {open_.request_id!r} to {open_.to_stage} by {open_.by!r}; "
            "approve, reject or cancel it first"
        )
    policy = state.policy.for_stage(to)
    if v.stage not in policy.from_stages:
        raise FailedPrecondition(
            f"the policy of model {state.name!r} allows {to} only from {' or '.join(policy.from_stages)}; "
            f"{ref} is in {v.stage}"
        )
    events: list[DomainEvent] = [
        TransitionRequested(
            request_id=cmd.request_id,
            version=v.version,
            from_stage=v.stage,
            to_stage=to,
            by=cmd.actor.name,
            comment=cmd.comment,
            approvals_required=policy.approvals_required,
            approver_role=policy.approver_role,
            allow_self_approval=policy.allow_self_approval,
        )
    ]
    if policy.approvals_required == 0:
        events += _move(state, v, to, cmd.request_id, cmd.actor.name)
    return events


def _open_request(state: ModelState, version: int, request_id: str | None) -> RequestState:
    v = _version(state, version)
    if not request_id:
        if v.open_request is None:
            raise FailedPrecondition(f"{_ref(state, version)} has no open transition request")
        return state.requests[v.open_request]
    req = state.requests.get(request_id)
    if req is None:
        raise NotFound(f"model {state.name!r} has no transition request {request_id!r}")
    if req.version != version:
        _invalid(
            "request_id", f"request {request_id!r} is about version {req.version}, not version {version}"
        )
    if req.status != "OPEN":
        raise FailedPrecondition(
            f"request {request_id!r} for {_ref(state, version)} is already {req.status.lower()}"
        )
    return req


def _check_reviewer(state: ModelState, req: RequestState, actor: Actor, verb: str) -> None:
    what = f"request {req.request_id!r} ({_ref(state, req.version)} to {req.to_stage})"
    if not actor.holds(req.approver_role):
        need = _REQUIRES[req.approver_role]
        raise PermissionDenied(
            f"{actor.name!r} may not {verb} {what}: the policy's approvers are {req.approver_role}s, "
            f"who hold {need} on the model ({actor.name!r} holds "
            f"{', '.join(sorted(actor.perms)) or 'nothing'} there)"
        )
    if actor.name == req.by and not req.allow_self_approval:
        raise PermissionDenied(
            f"{actor.name!r} opened {what} and may not {verb} it; another approver must "
            "(the requester may cancel it)"
        )


def _approve(cmd: ApproveTransition, state: ModelState) -> list[DomainEvent]:
    check_text("comment", cmd.comment, MAX_COMMENT)
    req = _open_request(state, cmd.version, cmd.request_id)
    _check_reviewer(state, req, cmd.actor, "approve")
    if cmd.actor.name in req.approvals:
        raise FailedPrecondition(f"{cmd.actor.name!r} already approved request {req.request_id!r}")
    events: list[DomainEvent] = [
        TransitionApproved(
            request_id=req.request_id, version=req.version, by=cmd.actor.name, comment=cmd.comment
        )
    ]
    if len(req.approvals) + 1 >= req.approvals_required:
        # An open request's version is still in the stage it was requested from: every other way a
        # version changes stage (or stops being movable) closes its open request in the same decision.
        events += _move(state, state.versions[req.version], req.to_stage, req.request_id, cmd.actor.name)
    return events


def _reject(cmd: RejectTransition, state: ModelState) -> list[DomainEvent]:
    check_text("comment", cmd.comment, MAX_COMMENT)
    req = _open_request(state, cmd.version, cmd.request_id)
    _check_reviewer(state, req, cmd.actor, "reject")
    return [
        TransitionRejected(
            request_id=req.request_id, version=req.version, by=cmd.actor.name, comment=cmd.comment
        )
    ]


def _cancel(cmd: CancelTransition, state: ModelState) -> list[DomainEvent]:
    check_text("comment", cmd.comment, MAX_COMMENT)
    req = _open_request(state, cmd.version, cmd.request_id)
    if cmd.actor.name != req.by and not cmd.actor.holds("admin"):
        raise PermissionDenied(
            f"{cmd.actor.name!r} may not cancel request {req.request_id!r}: only its requester "
            f"{req.by!r} or an admin may (reviewers reject)"
        )
    return [
        TransitionCancelled(
            request_id=req.request_id, version=req.version, by=cmd.actor.name, reason=cmd.comment
        )
    ]


def _comment(cmd: CommentOnVersion, state: ModelState) -> list[DomainEvent]:
    if not cmd.comment.strip():
        _invalid("comment", "must not be empty")
    check_text("comment", cmd.comment, MAX_COMMENT)
    v = _version(state, cmd.version)
    if cmd.request_id:
        req = state.requests.get(cmd.request_id)
        if req is None or req.version != v.version:
            raise NotFound(f"{_ref(state, v.version)} has no transition request {cmd.request_id!r}")
    return [VersionCommented(version=v.version, comment=cmd.comment, request_id=cmd.request_id or None)]


def _change_model(cmd: ModelCommand, state: ModelState) -> list[DomainEvent]:
    match cmd:
        case RenameModel(name=name):
            check_model_name(name)
            return [] if name == state.name else [ModelRenamed(name=name, previous_name=state.name)]
        case DescribeModel(description=description):
            check_text("description", description, MAX_DESCRIPTION)
            return [] if description == state.description else [ModelDescribed(description=description)]
        case SetModelTags(tags=tags, delete_keys=keys):
            check_tags("tags", tags, keys)
            changed, gone = _changed_tags(state.tags, tags, keys, f"model {state.name!r}")
            return [ModelTagsSet(tags=changed, deleted_keys=gone)] if changed or gone else []
        case DeleteModel():
            return _delete_model(cmd, state)
        case SetPolicy():
            return _set_policy(cmd, state)
        case CreateVersion():
            return _create_version(cmd, state)
    raise TypeError(f"not a model command: {cmd!r}")


def _change_version(cmd: ModelCommand, state: ModelState) -> list[DomainEvent]:
    match cmd:
        case AnnotateVersion():
            return _annotate(cmd, state)
        case DeprecateVersion():
            return _deprecate(cmd, state)
        case DeleteVersion():
            return _delete_version(cmd, state)
        case SetAlias():
            return _set_alias(cmd, state)
        case RemoveAlias():
            return _remove_alias(cmd, state)
        case RequestTransition():
            return _request(cmd, state)
        case ApproveTransition():
            return _approve(cmd, state)
        case RejectTransition():
            return _reject(cmd, state)
        case CancelTransition():
            return _cancel(cmd, state)
        case CommentOnVersion():
            return _comment(cmd, state)
    return _change_model(cmd, state)


def decide(cmd: ModelCommand, state: ModelState) -> Sequence[DomainEvent]:
    if isinstance(cmd, RegisterModel):
        return _register(cmd, state)
    if not state.exists:
        raise NotFound("the model does not exist")
    if isinstance(cmd, RestoreModel):
        if not state.deleted:
            raise FailedPrecondition(f"model {state.name!r} is not deleted; there is nothing to restore")
        return [ModelRestored()]
    if state.deleted:
        raise FailedPrecondition(f"model {state.name!r} is deleted; restore it before changing it")
    return _change_version(cmd, state)


# ---------------------------------------------------------------- evolve


def _with_version(state: ModelState, number: int, **changes: object) -> ModelState:
    v = replace(state.versions[number], **changes)  # type: ignore[arg-type]
    return replace(state, versions={**state.versions, number: v})


def _with_request(state: ModelState, request_id: str, **changes: object) -> ModelState:
    r = replace(state.requests[request_id], **changes)  # type: ignore[arg-type]
    return replace(state, requests={**state.requests, request_id: r})


def _close(state: ModelState, request_id: str, status: RequestStatus) -> ModelState:
    req = state.requests[request_id]
    state = _with_request(state, request_id, status=status)
    if state.versions[req.version].open_request == request_id:
        state = _with_version(state, req.version, open_request=None)
    return state


def _evolve_version(state: ModelState, e: DomainEvent) -> ModelState:
    match e:
        case ModelVersionCreated(version=n, run=run, description=description, tags=tags):
            v = VersionState(version=n, run_id=run.run_id, description=description, tags=tags)
            return replace(
                state, versions={**state.versions, n: v}, latest_version=max(n, state.latest_version)
            )
        case VersionAnnotated(version=n, description=description, tags=tags, deleted_tag_keys=gone):
            old = state.versions[n]
            merged = {k: v for k, v in {**old.tags, **tags}.items() if k not in gone}
            return _with_version(
                state, n, tags=merged, description=old.description if description is None else description
            )
        case VersionDeprecated(version=n):
            return _with_version(state, n, status="DEPRECATED")
        case VersionDeleted(version=n):
            return _with_version(state, n, status="DELETED")
        case AliasSet(alias=alias, version=n):
            return replace(state, aliases={**state.aliases, alias: n})
        case AliasRemoved(alias=alias):
            return replace(state, aliases={a: n for a, n in state.aliases.items() if a != alias})
    return state


def _evolve_transition(state: ModelState, e: DomainEvent) -> ModelState:
    match e:
        case TransitionRequested():
            req = RequestState(
                request_id=e.request_id,
                version=e.version,
                from_stage=e.from_stage,
                to_stage=e.to_stage,
                by=e.by,
                approvals_required=e.approvals_required,
                approver_role=e.approver_role,
                allow_self_approval=e.allow_self_approval,
            )
            state = replace(state, requests={**state.requests, e.request_id: req})
            return _with_version(state, e.version, open_request=e.request_id)
        case TransitionApproved(request_id=rid, by=by):
            return _with_request(state, rid, approvals=(*state.requests[rid].approvals, by))
        case TransitionRejected(request_id=rid):
            return _close(state, rid, "REJECTED")
        case TransitionCancelled(request_id=rid):
            return _close(state, rid, "CANCELLED")
        case VersionStageChanged(version=n, to_stage=to, request_id=rid):
            count = state.stage_changes + 1
            state = _with_version(replace(state, stage_changes=count), n, stage=to, entered_stage=count)
            if rid is not None and rid in state.requests and state.requests[rid].version == n:
                state = _close(state, rid, "APPROVED")
            return state
    return _evolve_version(state, e)


def evolve(state: ModelState, e: DomainEvent) -> ModelState:
    match e:
        case ModelRegistered():
            return ModelState(model_id=e.model_id, name=e.name, description=e.description, tags=e.tags)
        case ModelRenamed(name=name):
            return replace(state, name=name)
        case ModelDescribed(description=description):
            return replace(state, description=description)
        case ModelTagsSet(tags=tags, deleted_keys=gone):
            return replace(state, tags={k: v for k, v in {**state.tags, **tags}.items() if k not in gone})
        case ModelDeleted():
            return replace(state, deleted=True)
        case ModelRestored():
            return replace(state, deleted=False)
        case PolicySet(policy=policy):
            return replace(state, policy=policy)
    return _evolve_transition(state, e)


model_decider: Decider[ModelCommand, ModelState] = Decider(ModelState(), decide, evolve)


# ---------------------------------------------------------------- model names


@dataclass(frozen=True)
class ClaimModelName:
    name: str
    model_id: str


@dataclass(frozen=True)
class ReleaseModelName:
    name: str
    model_id: str


NameCommand = ClaimModelName | ReleaseModelName


@dataclass(frozen=True)
class NameClaimState:
    holder: str | None = None


def decide_name(cmd: NameCommand, state: NameClaimState) -> Sequence[DomainEvent]:
    if isinstance(cmd, ClaimModelName):
        check_model_name(cmd.name)
        if state.holder == cmd.model_id:
            return []  # a retried claim
        if state.holder is not None:
            raise AlreadyExists(f"a model named {cmd.name!r} already exists (id {state.holder})")
        return [ModelNameClaimed(name=cmd.name, model_id=cmd.model_id)]
    if state.holder is None:
        return []  # a retried release
    if state.holder != cmd.model_id:
        raise FailedPrecondition(
            f"model name {cmd.name!r} belongs to model {state.holder}, not {cmd.model_id}; "
            "only its holder may release it"
        )
    return [ModelNameReleased(name=cmd.name, model_id=cmd.model_id)]


def evolve_name(state: NameClaimState, event: DomainEvent) -> NameClaimState:
    if isinstance(event, ModelNameClaimed):
        return NameClaimState(holder=event.model_id)
    if isinstance(event, ModelNameReleased):
        return NameClaimState()
    return state


name_claim_decider: Decider[NameCommand, NameClaimState] = Decider(NameClaimState(), decide_name, evolve_name)
