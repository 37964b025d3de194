"""A model's versions: created from a run's model artifact, annotated, deprecated, deleted, and named
by aliases. A version in Production or behind an alias is live and cannot be deprecated or deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from eventlog import DomainEvent, FailedPrecondition, InvalidArgument, NotFound

from .checks import (
    MAX_ALIASES,
    MAX_COMMENT,
    MAX_DESCRIPTION,
    MAX_FRAMEWORK,
    check_alias,
    check_signature,
    check_tags,
    check_text,
)
from .events import (
    AliasRemoved,
    AliasSet,
    ArtifactLineage,
    ModelVersionCreated,
    RunLineage,
    VersionAnnotated,
    VersionDeleted,
    VersionDeprecated,
)
from .sources import MODEL_ID_TAG, SOURCE_TAG, source_problem
from .state import (
    SYSTEM,
    Actor,
    ModelState,
    VersionState,
    cancel_open,
    changed_tags,
    live_version,
    ref,
    with_version,
)


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


VersionCommand = CreateVersion | AnnotateVersion | DeprecateVersion | DeleteVersion | SetAlias | RemoveAlias


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
    _check_source(cmd.tags, run.run_id)
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


def _check_source(tags: Mapping[str, str], run_id: str) -> None:
    """An MLflow source a client would be handed back must stay inside the version's run or model."""
    if SOURCE_TAG in tags:
        problem = source_problem(tags[SOURCE_TAG], run_id, tags.get(MODEL_ID_TAG, ""))
        if problem:
            raise InvalidArgument.field(f"tags[{SOURCE_TAG!r}]", problem)


def _annotate(cmd: AnnotateVersion, state: ModelState) -> list[DomainEvent]:
    v = live_version(state, cmd.version)
    if cmd.description is not None:
        check_text("description", cmd.description, MAX_DESCRIPTION)
    check_tags("tags", cmd.tags, cmd.delete_tag_keys)
    if SOURCE_TAG in cmd.tags or MODEL_ID_TAG in cmd.tags:
        _check_source({**v.tags, **cmd.tags}, v.run_id)
    tags, gone = changed_tags(v.tags, cmd.tags, cmd.delete_tag_keys, ref(state, v.version))
    description = None if cmd.description in (None, v.description) else cmd.description
    if description is None and not tags and not gone:
        return []
    return [VersionAnnotated(version=v.version, description=description, tags=tags, deleted_tag_keys=gone)]


def _refuse_if_live(state: ModelState, v: VersionState, doing: str) -> None:
    if v.stage == "Production":
        raise FailedPrecondition(f"{ref(state, v.version)} is in Production; archive it before {doing} it")
    aliases = state.aliases_of(v.version)
    if aliases:
        names = ", ".join(aliases)
        raise FailedPrecondition(
            f"{ref(state, v.version)} is the target of alias {names}; move or remove it before {doing} it"
        )


def _deprecate(cmd: DeprecateVersion, state: ModelState) -> list[DomainEvent]:
    v = live_version(state, cmd.version)
    if v.status == "DEPRECATED":
        raise FailedPrecondition(f"{ref(state, v.version)} is already deprecated")
    check_text("reason", cmd.reason, MAX_COMMENT)
    _refuse_if_live(state, v, "deprecating")
    cancelled = cancel_open(state, v, cmd.actor.name, f"version {v.version} was deprecated")
    return [*cancelled, VersionDeprecated(version=v.version, reason=cmd.reason)]


def _delete_version(cmd: DeleteVersion, state: ModelState) -> list[DomainEvent]:
    v = live_version(state, cmd.version)
    _refuse_if_live(state, v, "deleting")
    cancelled = cancel_open(state, v, cmd.actor.name, f"version {v.version} was deleted")
    return [*cancelled, VersionDeleted(version=v.version)]


def _set_alias(cmd: SetAlias, state: ModelState) -> list[DomainEvent]:
    check_alias(cmd.alias)
    v = live_version(state, cmd.version)
    if v.status == "DEPRECATED":
        raise FailedPrecondition(f"{ref(state, v.version)} is deprecated; an alias cannot point at it")
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


def decide_version(cmd: VersionCommand, state: ModelState) -> list[DomainEvent]:
    match cmd:
        case CreateVersion():
            return _create_version(cmd, state)
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
    raise TypeError(f"not a version command: {cmd!r}")


def evolve_version(state: ModelState, e: DomainEvent) -> ModelState:
    """A version's events and the aliases'; the others leave the state as it is."""
    match e:
        case ModelVersionCreated(version=n, run=run, description=description, tags=tags):
            v = VersionState(version=n, run_id=run.run_id, description=description, tags=tags)
            return replace(
                state, versions={**state.versions, n: v}, latest_version=max(n, state.latest_version)
            )
        case VersionAnnotated(version=n, description=description, tags=tags, deleted_tag_keys=gone):
            old = state.versions[n]
            merged = {k: v for k, v in {**old.tags, **tags}.items() if k not in gone}
            return with_version(
                state, n, tags=merged, description=old.description if description is None else description
            )
        case VersionDeprecated(version=n):
            return with_version(state, n, status="DEPRECATED")
        case VersionDeleted(version=n):
            return with_version(state, n, status="DELETED")
        case AliasSet(alias=alias, version=n):
            return replace(state, aliases={**state.aliases, alias: n})
        case AliasRemoved(alias=alias):
            return replace(state, aliases={a: n for a, n in state.aliases.items() if a != alias})
    return state
