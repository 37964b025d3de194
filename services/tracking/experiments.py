"""Experiments: created, renamed, described, tagged, deleted and restored, each in its own stream; and
the check StartRun makes that its experiment is live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from eventlog import AlreadyExists, Decider, DomainEvent, FailedPrecondition, NotFound

from .checks import (
    MAX_TAG_VALUE,
    changed_entries,
    check_entries,
    check_id,
    check_name,
    check_text,
    check_time,
)
from .events import (
    ExperimentCreated,
    ExperimentDeleted,
    ExperimentDescribed,
    ExperimentRenamed,
    ExperimentRestored,
    ExperimentTagDeleted,
    ExperimentTagsSet,
)


@dataclass(frozen=True)
class CreateExperiment:
    experiment_id: str
    name: str
    created_at_ms: int
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    project: str = "default"


@dataclass(frozen=True)
class RenameExperiment:
    experiment_id: str
    name: str


@dataclass(frozen=True)
class DescribeExperiment:
    experiment_id: str
    description: str


@dataclass(frozen=True)
class SetExperimentTags:
    experiment_id: str
    tags: Mapping[str, str]


@dataclass(frozen=True)
class DeleteExperimentTag:
    experiment_id: str
    key: str


@dataclass(frozen=True)
class DeleteExperiment:
    experiment_id: str


@dataclass(frozen=True)
class RestoreExperiment:
    experiment_id: str


ExperimentCommand = (
    CreateExperiment
    | RenameExperiment
    | DescribeExperiment
    | SetExperimentTags
    | DeleteExperimentTag
    | DeleteExperiment
    | RestoreExperiment
)


@dataclass(frozen=True)
class ExperimentState:
    experiment_id: str = ""
    name: str = ""
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at_ms: int = 0
    deleted: bool = False

    @property
    def exists(self) -> bool:
        return bool(self.experiment_id)


def decide_experiment(cmd: ExperimentCommand, state: ExperimentState) -> Sequence[DomainEvent]:
    ref = f"experiment {cmd.experiment_id!r}"
    if isinstance(cmd, CreateExperiment):
        if state.exists:
            raise AlreadyExists(f"{ref} already exists (named {state.name!r})")
        check_id("experiment_id", cmd.experiment_id)
        check_name("name", cmd.name)
        check_text("description", cmd.description, MAX_TAG_VALUE)
        check_entries("tags", cmd.tags, MAX_TAG_VALUE)
        check_time("created_at_ms", cmd.created_at_ms)
        return [
            ExperimentCreated(
                experiment_id=cmd.experiment_id,
                name=cmd.name,
                description=cmd.description,
                tags=dict(cmd.tags),
                created_at_ms=cmd.created_at_ms,
                project=cmd.project,
            )
        ]
    if not state.exists:
        raise NotFound(f"{ref} does not exist")
    match cmd:
        case DeleteExperiment():
            if state.deleted:
                raise FailedPrecondition(f"{ref} ({state.name!r}) is already deleted")
            return [ExperimentDeleted()]
        case RestoreExperiment():
            if not state.deleted:
                raise FailedPrecondition(f"{ref} ({state.name!r}) is not deleted; nothing to restore")
            return [ExperimentRestored()]
    if state.deleted:
        raise FailedPrecondition(f"{ref} ({state.name!r}) is deleted; restore it before changing it")
    match cmd:
        case RenameExperiment(name=name):
            check_name("name", name)
            return [] if name == state.name else [ExperimentRenamed(name=name, previous_name=state.name)]
        case DescribeExperiment(description=description):
            check_text("description", description, MAX_TAG_VALUE)
            return [] if description == state.description else [ExperimentDescribed(description=description)]
        case SetExperimentTags(tags=tags):
            check_entries("tags", tags, MAX_TAG_VALUE)
            changed = changed_entries(state.tags, tags)
            return [ExperimentTagsSet(tags=changed)] if changed else []
        case DeleteExperimentTag(key=key):
            if key not in state.tags:
                raise NotFound(f"{ref} has no tag {key!r}")
            return [ExperimentTagDeleted(key=key)]
    raise TypeError(f"not an experiment command: {cmd!r}")


def evolve_experiment(state: ExperimentState, event: DomainEvent) -> ExperimentState:
    match event:
        case ExperimentCreated():
            return ExperimentState(
                experiment_id=event.experiment_id,
                name=event.name,
                description=event.description,
                tags=event.tags,
                created_at_ms=event.created_at_ms,
            )
        case ExperimentRenamed(name=name):
            return replace(state, name=name)
        case ExperimentDescribed(description=description):
            return replace(state, description=description)
        case ExperimentTagsSet(tags=tags):
            return replace(state, tags={**state.tags, **tags})
        case ExperimentTagDeleted(key=key):
            return replace(state, tags={k: v for k, v in state.tags.items() if k != key})
        case ExperimentDeleted():
            return replace(state, deleted=True)
        case ExperimentRestored():
            return replace(state, deleted=False)
    return state


experiment_decider: Decider[ExperimentCommand, ExperimentState] = Decider(
    ExperimentState(), decide_experiment, evolve_experiment
)


def ensure_experiment_accepts_runs(experiment: ExperimentState, experiment_id: str) -> None:
    """The service calls this with the folded experiment before StartRun: runs go to live experiments."""
    if not experiment.exists:
        raise NotFound(f"experiment {experiment_id!r} does not exist")
    if experiment.deleted:
        raise FailedPrecondition(
            f"experiment {experiment_id!r} ({experiment.name!r}) is deleted; restore it to start runs in it"
        )
