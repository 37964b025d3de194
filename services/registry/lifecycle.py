"""A model's own life: registered, renamed, described, tagged, given a policy, deleted and restored.
The rules that touch its versions are in `versions` and `transitions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from eventlog import AlreadyExists, DomainEvent, FailedPrecondition, PermissionDenied

from .checks import (
    MAX_DESCRIPTION,
    check_id,
    check_model_name,
    check_policy,
    check_tags,
    check_text,
    invalid,
)
from .events import (
    ModelDeleted,
    ModelDescribed,
    ModelPolicy,
    ModelRegistered,
    ModelRenamed,
    ModelRestored,
    ModelTagsSet,
    PolicySet,
    StagePolicy,
)
from .state import SYSTEM, Actor, ModelState, cancel_open, changed_tags


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


LifecycleCommand = RenameModel | DescribeModel | SetModelTags | DeleteModel | SetPolicy
"""What changes a model that exists and is not deleted (registering and restoring are decided first)."""


def register(cmd: RegisterModel, state: ModelState) -> list[DomainEvent]:
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


def _delete_model(cmd: DeleteModel, state: ModelState) -> list[DomainEvent]:
    live = state.in_production()
    if live:
        numbers = ", ".join(str(v.version) for v in live)
        raise FailedPrecondition(
            f"model {state.name!r} has version {numbers} in Production; archive it before deleting the model"
        )
    events: list[DomainEvent] = []
    for v in state.versions.values():
        events += cancel_open(state, v, cmd.actor.name, f"model {state.name!r} was deleted")
    return [*events, ModelDeleted()]


def _set_policy(cmd: SetPolicy, state: ModelState) -> list[DomainEvent]:
    if not cmd.actor.holds("admin"):
        raise PermissionDenied(
            f"{cmd.actor.name!r} may not change the policy of model {state.name!r}: "
            "it needs MANAGE on the model (the admin role, or a MANAGE grant)"
        )
    old = state.policy
    if cmd.max_production_versions is not None and not 1 <= cmd.max_production_versions <= 100:
        invalid("policy.max_production_versions", "must be 1 to 100")
    policy = ModelPolicy(
        staging=cmd.staging or old.staging,
        production=cmd.production or old.production,
        archived=cmd.archived or old.archived,
        max_production_versions=cmd.max_production_versions or old.max_production_versions,
    )
    check_policy(policy)
    return [] if policy == old else [PolicySet(policy=policy, previous=old)]


def decide_lifecycle(cmd: LifecycleCommand, state: ModelState) -> list[DomainEvent]:
    match cmd:
        case RenameModel(name=name):
            check_model_name(name)
            return [] if name == state.name else [ModelRenamed(name=name, previous_name=state.name)]
        case DescribeModel(description=description):
            check_text("description", description, MAX_DESCRIPTION)
            return [] if description == state.description else [ModelDescribed(description=description)]
        case SetModelTags(tags=tags, delete_keys=keys):
            check_tags("tags", tags, keys)
            changed, gone = changed_tags(state.tags, tags, keys, f"model {state.name!r}")
            return [ModelTagsSet(tags=changed, deleted_keys=gone)] if changed or gone else []
        case DeleteModel():
            return _delete_model(cmd, state)
        case SetPolicy():
            return _set_policy(cmd, state)
    raise TypeError(f"not a model command: {cmd!r}")


def evolve_lifecycle(state: ModelState, e: DomainEvent) -> ModelState:
    """The model's own events; the others leave the state as it is."""
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
    return state
