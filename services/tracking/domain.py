"""Tracking's rules as deciders: experiments, runs, and experiment-name claims (MLflow-compatible limits).

Experiment names are unique, which no single experiment stream can know. The service therefore claims
the name in its own stream (`experiment_name_stream_id`) before creating or renaming an experiment and
releases the old one after a rename; optimistic concurrency on that stream makes two concurrent claims
of one name end with exactly one winner. A deleted experiment keeps its name, as in MLflow.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NoReturn

from pydantic import ValidationError

from eventlog import AlreadyExists, Decider, DomainEvent, FailedPrecondition, InvalidArgument, NotFound
from modelog.shared.inputs import unsafe_character

from .events import (
    TERMINAL_STATUSES,
    DatasetInputLogged,
    ExperimentCreated,
    ExperimentDeleted,
    ExperimentDescribed,
    ExperimentNameClaimed,
    ExperimentNameReleased,
    ExperimentRenamed,
    ExperimentRestored,
    ExperimentTagDeleted,
    ExperimentTagsSet,
    MetricsLogged,
    ParamsLogged,
    RunDeleted,
    RunFinished,
    RunRenamed,
    RunRestored,
    RunSource,
    RunStarted,
    RunStatus,
    TagDeleted,
    TagsSet,
    TerminalStatus,
)

MAX_NAME = 250
MAX_KEY = 250
MAX_PARAM_VALUE = 6_000
MAX_TAG_VALUE = 8_000
MAX_ENTRIES_PER_COMMAND = 1_000
MAX_METRIC_POINTS = 100_000
MAX_DATASET_NAME = 500
MAX_DIGEST = 128
MAX_DATASET_SOURCE = 65_535
MAX_DATASET_DOCUMENT = 1_048_575
MAX_STREAM_ID = 200  # eventlog.store's limit
INT64 = 2**63

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_KEY = re.compile(r"^[/\w.\- :]+\Z")
_TERMINAL: dict[str, TerminalStatus] = {s: s for s in TERMINAL_STATUSES}

# ---------------------------------------------------------------- validation


def _invalid(name: str, why: str) -> NoReturn:
    raise InvalidArgument.field(name, why)


def check_id(name: str, value: str) -> str:
    if not _ID.match(value):
        _invalid(name, f"{value!r} is not an id: 1-128 of A-Z a-z 0-9 . _ -, starting alphanumeric")
    return value


def check_name(name: str, value: str, limit: int = MAX_NAME) -> str:
    """A person-given name: 1..limit characters (250 unless said otherwise), none of them a control,
    bidirectional or invisible character (eventlog.inputs); letters of any script are fine."""
    if not value:
        _invalid(name, "must not be empty")
    if len(value) > limit:
        _invalid(name, f"is {len(value)} characters long; the limit is {limit}")
    bad = unsafe_character(value)
    if bad:
        _invalid(name, f"contains {bad[1]} at position {bad[0]}")
    return value


def _check_text(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        _invalid(name, f"is {len(value)} characters long; the limit is {limit}")


def check_key(name: str, key: str) -> None:
    """Param, metric and tag keys, as MLflow accepts them (they may become file names)."""
    if not key:
        _invalid(name, "key must not be empty")
    if len(key) > MAX_KEY:
        _invalid(name, f"key is {len(key)} characters long; the limit is {MAX_KEY}")
    if not _KEY.match(key):
        _invalid(name, f"key {key!r} may only contain letters, digits, '_', '-', '.', ' ', ':' and '/'")
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith(("..", "/")):
        _invalid(name, f"key {key!r} is not a clean relative path (it would resolve to {norm!r})")


def _check_entries(name: str, entries: Mapping[str, str], value_limit: int) -> None:
    if len(entries) > MAX_ENTRIES_PER_COMMAND:
        _invalid(name, f"{len(entries)} entries in one command; the limit is {MAX_ENTRIES_PER_COMMAND}")
    for key, value in entries.items():
        check_key(f"{name}[{key!r}]", key)
        _check_text(f"{name}[{key!r}]", value, value_limit)


def _check_int64(name: str, values: Sequence[int]) -> None:
    if values and (min(values) < -INT64 or max(values) >= INT64):
        _invalid(name, "values must fit in a signed 64-bit integer")


def _check_time(name: str, value: int) -> None:
    if not 0 <= value < INT64:
        _invalid(name, f"{value} is not a time in milliseconds since the epoch")


# ---------------------------------------------------------------- stream ids


def experiment_stream_id(experiment_id: str) -> str:
    return f"experiment-{experiment_id}"


def run_stream_id(run_id: str) -> str:
    return f"run-{run_id}"


def experiment_name_stream_id(name: str) -> str:
    """`experiment-name-<name>`; names the log cannot hold as a stream id (too long, not printable) use
    `experiment-name#sha256:<hex>` instead, a prefix no plain name can produce."""
    plain = f"experiment-name-{name}"
    if len(plain) <= MAX_STREAM_ID and plain.isprintable():
        return plain
    return f"experiment-name#sha256:{hashlib.sha256(name.encode()).hexdigest()}"


# ---------------------------------------------------------------- experiments


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


def _changed(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def decide_experiment(cmd: ExperimentCommand, state: ExperimentState) -> Sequence[DomainEvent]:
    ref = f"experiment {cmd.experiment_id!r}"
    if isinstance(cmd, CreateExperiment):
        if state.exists:
            raise AlreadyExists(f"{ref} already exists (named {state.name!r})")
        check_id("experiment_id", cmd.experiment_id)
        check_name("name", cmd.name)
        _check_text("description", cmd.description, MAX_TAG_VALUE)
        _check_entries("tags", cmd.tags, MAX_TAG_VALUE)
        _check_time("created_at_ms", cmd.created_at_ms)
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
            _check_text("description", description, MAX_TAG_VALUE)
            return [] if description == state.description else [ExperimentDescribed(description=description)]
        case SetExperimentTags(tags=tags):
            _check_entries("tags", tags, MAX_TAG_VALUE)
            changed = _changed(state.tags, tags)
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


# ---------------------------------------------------------------- experiment names


@dataclass(frozen=True)
class ClaimExperimentName:
    name: str
    experiment_id: str


@dataclass(frozen=True)
class ReleaseExperimentName:
    name: str
    experiment_id: str


NameCommand = ClaimExperimentName | ReleaseExperimentName


@dataclass(frozen=True)
class NameClaimState:
    holder: str | None = None


def decide_name(cmd: NameCommand, state: NameClaimState) -> Sequence[DomainEvent]:
    if isinstance(cmd, ClaimExperimentName):
        check_name("name", cmd.name)
        if state.holder == cmd.experiment_id:
            return []  # a retried claim
        if state.holder is not None:
            raise AlreadyExists(f"an experiment named {cmd.name!r} already exists (id {state.holder!r})")
        return [ExperimentNameClaimed(name=cmd.name, experiment_id=cmd.experiment_id)]
    if state.holder is None:
        return []  # a retried release
    if state.holder != cmd.experiment_id:
        raise FailedPrecondition(
            f"experiment name {cmd.name!r} belongs to experiment {state.holder!r}, "
            f"not {cmd.experiment_id!r}; only its holder may release it"
        )
    return [ExperimentNameReleased(name=cmd.name, experiment_id=cmd.experiment_id)]


def evolve_name(state: NameClaimState, event: DomainEvent) -> NameClaimState:
    if isinstance(event, ExperimentNameClaimed):
        return NameClaimState(holder=event.experiment_id)
    if isinstance(event, ExperimentNameReleased):
        return NameClaimState()
    return state


name_claim_decider: Decider[NameCommand, NameClaimState] = Decider(NameClaimState(), decide_name, evolve_name)


# ---------------------------------------------------------------- runs


@dataclass(frozen=True)
class StartRun:
    run_id: str
    experiment_id: str
    name: str
    start_time_ms: int
    parent_run_id: str | None = None
    source: RunSource = field(default_factory=RunSource)
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RenameRun:
    run_id: str
    name: str


@dataclass(frozen=True)
class LogParams:
    run_id: str
    params: Mapping[str, str]


@dataclass(frozen=True)
class LogMetrics:
    """A columnar batch: entry i is (keys[i], values[i], steps[i], timestamps_ms[i]); NaN/±inf allowed."""

    run_id: str
    keys: Sequence[str]
    values: Sequence[float]
    steps: Sequence[int]
    timestamps_ms: Sequence[int]


@dataclass(frozen=True)
class SetTags:
    run_id: str
    tags: Mapping[str, str]


@dataclass(frozen=True)
class DeleteTag:
    run_id: str
    key: str


@dataclass(frozen=True)
class LogDatasetInput:
    run_id: str
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    context: str | None = None
    dataset_schema: str | None = None
    dataset_profile: str | None = None


@dataclass(frozen=True)
class FinishRun:
    run_id: str
    status: str
    end_time_ms: int


@dataclass(frozen=True)
class DeleteRun:
    run_id: str


@dataclass(frozen=True)
class RestoreRun:
    run_id: str


RunCommand = (
    StartRun
    | RenameRun
    | LogParams
    | LogMetrics
    | SetTags
    | DeleteTag
    | LogDatasetInput
    | FinishRun
    | DeleteRun
    | RestoreRun
)


@dataclass(frozen=True)
class RunState:
    run_id: str = ""
    experiment_id: str = ""
    name: str = ""
    status: RunStatus = "RUNNING"
    start_time_ms: int = 0
    end_time_ms: int | None = None
    parent_run_id: str | None = None
    source: RunSource = field(default_factory=RunSource)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    datasets: tuple[DatasetInputLogged, ...] = ()
    metric_points: int = 0
    deleted: bool = False

    @property
    def exists(self) -> bool:
        return bool(self.run_id)

    @property
    def active(self) -> bool:
        return self.exists and self.status == "RUNNING" and not self.deleted


def ensure_valid_parent(parent: RunState, parent_run_id: str, experiment_id: str) -> None:
    """The service calls this with the folded parent run before StartRun of a nested run."""
    if not parent.exists:
        raise NotFound(f"parent run {parent_run_id!r} does not exist")
    if parent.deleted:
        raise FailedPrecondition(f"parent run {parent_run_id!r} is deleted")
    if parent.experiment_id != experiment_id:
        raise InvalidArgument.field(
            "parent_run_id",
            f"run {parent_run_id!r} belongs to experiment {parent.experiment_id!r}, "
            f"not {experiment_id!r}; a nested run lives in its parent's experiment",
        )


def _require_writable(state: RunState, run_id: str, *, annotation: bool = False) -> None:
    """Deleted runs accept nothing; finished runs accept annotations (tags, a new name) but no data."""
    if state.deleted:
        raise FailedPrecondition(f"run {run_id!r} is deleted; restore it before changing it")
    if not annotation and state.status != "RUNNING":
        raise FailedPrecondition(f"run {run_id!r} is {state.status}; a finished run accepts no more data")


def _start(cmd: StartRun) -> RunStarted:
    check_id("run_id", cmd.run_id)
    check_id("experiment_id", cmd.experiment_id)
    check_name("name", cmd.name)
    _check_time("start_time_ms", cmd.start_time_ms)
    if cmd.parent_run_id is not None:
        check_id("parent_run_id", cmd.parent_run_id)
        if cmd.parent_run_id == cmd.run_id:
            _invalid("parent_run_id", "a run cannot be its own parent")
    for part, value in cmd.source.model_dump().items():
        _check_text(f"source.{part}", value, MAX_TAG_VALUE)
    _check_entries("tags", cmd.tags, MAX_TAG_VALUE)
    return RunStarted(
        run_id=cmd.run_id,
        experiment_id=cmd.experiment_id,
        name=cmd.name,
        start_time_ms=cmd.start_time_ms,
        parent_run_id=cmd.parent_run_id,
        source=cmd.source,
        tags=dict(cmd.tags),
    )


def _log_params(cmd: LogParams, state: RunState) -> list[DomainEvent]:
    _check_entries("params", cmd.params, MAX_PARAM_VALUE)
    for key, value in cmd.params.items():
        old = state.params.get(key)
        if old is not None and old != value:
            _invalid(
                f"params[{key!r}]",
                f"param {key!r} of run {cmd.run_id!r} was already logged as {old[:100]!r}; "
                f"params are set once, so {value[:100]!r} cannot replace it (log it under a new key)",
            )
    new = {k: v for k, v in cmd.params.items() if k not in state.params}
    return [ParamsLogged(params=new)] if new else []


def _log_metrics(cmd: LogMetrics) -> list[DomainEvent]:
    n = len(cmd.keys)
    if not len(cmd.values) == len(cmd.steps) == len(cmd.timestamps_ms) == n:
        _invalid(
            "metrics",
            f"columns differ in length: {n} keys, {len(cmd.values)} values, "
            f"{len(cmd.steps)} steps, {len(cmd.timestamps_ms)} timestamps",
        )
    if n > MAX_METRIC_POINTS:
        _invalid("metrics", f"{n} points in one batch; the limit is {MAX_METRIC_POINTS}, split the batch")
    if n == 0:
        return []
    for key in set(cmd.keys):
        check_key(f"metrics[{key!r}]", key)
    _check_int64("steps", cmd.steps)
    _check_int64("timestamps_ms", cmd.timestamps_ms)
    try:
        event = MetricsLogged(
            keys=tuple(cmd.keys),
            values=tuple(cmd.values),
            steps=tuple(cmd.steps),
            timestamps_ms=tuple(cmd.timestamps_ms),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        _invalid(".".join(str(p) for p in first["loc"]) or "metrics", first["msg"])
    return [event]


def _log_dataset(cmd: LogDatasetInput, state: RunState) -> list[DomainEvent]:
    check_name("name", cmd.name, MAX_DATASET_NAME)
    if not cmd.digest:
        _invalid("digest", "must not be empty")
    _check_text("digest", cmd.digest, MAX_DIGEST)
    _check_text("source_type", cmd.source_type, MAX_KEY)
    _check_text("source", cmd.source, MAX_DATASET_SOURCE)
    if cmd.context is not None:
        check_name("context", cmd.context)
    _check_text("dataset_schema", cmd.dataset_schema, MAX_DATASET_DOCUMENT)
    _check_text("dataset_profile", cmd.dataset_profile, MAX_DATASET_DOCUMENT)
    if any((d.name, d.digest, d.context) == (cmd.name, cmd.digest, cmd.context) for d in state.datasets):
        return []  # MLflow logs a (dataset, context) once per run
    return [
        DatasetInputLogged(
            name=cmd.name,
            digest=cmd.digest,
            source_type=cmd.source_type,
            source=cmd.source,
            context=cmd.context,
            dataset_schema=cmd.dataset_schema,
            dataset_profile=cmd.dataset_profile,
        )
    ]


def _finish(cmd: FinishRun, state: RunState) -> list[DomainEvent]:
    status = _TERMINAL.get(cmd.status)
    if status is None:
        _invalid("status", f"{cmd.status!r} does not finish a run; use one of {', '.join(TERMINAL_STATUSES)}")
    _check_time("end_time_ms", cmd.end_time_ms)
    if state.deleted:
        raise FailedPrecondition(f"run {cmd.run_id!r} is deleted; restore it before changing it")
    if state.status != "RUNNING":
        raise FailedPrecondition(f"run {cmd.run_id!r} already finished as {state.status}")
    return [RunFinished(status=status, end_time_ms=cmd.end_time_ms)]


def decide_run(cmd: RunCommand, state: RunState) -> Sequence[DomainEvent]:
    if isinstance(cmd, StartRun):
        if state.exists:
            raise AlreadyExists(f"run {cmd.run_id!r} already exists")
        return [_start(cmd)]
    if not state.exists:
        raise NotFound(f"run {cmd.run_id!r} does not exist")
    match cmd:
        case DeleteRun():
            if state.deleted:
                raise FailedPrecondition(f"run {cmd.run_id!r} is already deleted")
            return [RunDeleted()]
        case RestoreRun():
            if not state.deleted:
                raise FailedPrecondition(f"run {cmd.run_id!r} is not deleted; there is nothing to restore")
            return [RunRestored()]
        case FinishRun():
            return _finish(cmd, state)
        case RenameRun(name=name):
            _require_writable(state, cmd.run_id, annotation=True)
            check_name("name", name)
            return [] if name == state.name else [RunRenamed(name=name, previous_name=state.name)]
        case SetTags(tags=tags):
            _require_writable(state, cmd.run_id, annotation=True)
            _check_entries("tags", tags, MAX_TAG_VALUE)
            changed = _changed(state.tags, tags)
            return [TagsSet(tags=changed)] if changed else []
        case DeleteTag(key=key):
            _require_writable(state, cmd.run_id, annotation=True)
            if key not in state.tags:
                raise NotFound(f"run {cmd.run_id!r} has no tag {key!r}")
            return [TagDeleted(key=key)]
    _require_writable(state, cmd.run_id)
    match cmd:
        case LogParams():
            return _log_params(cmd, state)
        case LogMetrics():
            return _log_metrics(cmd)
        case LogDatasetInput():
            return _log_dataset(cmd, state)
    raise TypeError(f"not a run command: {cmd!r}")


def evolve_run(state: RunState, event: DomainEvent) -> RunState:
    match event:
        case RunStarted():
            return RunState(
                run_id=event.run_id,
                experiment_id=event.experiment_id,
                name=event.name,
                start_time_ms=event.start_time_ms,
                parent_run_id=event.parent_run_id,
                source=event.source,
                tags=event.tags,
            )
        case RunRenamed(name=name):
            return replace(state, name=name)
        case ParamsLogged(params=params):
            return replace(state, params={**state.params, **params})
        case MetricsLogged(keys=keys):
            return replace(state, metric_points=state.metric_points + len(keys))
        case TagsSet(tags=tags):
            return replace(state, tags={**state.tags, **tags})
        case TagDeleted(key=key):
            return replace(state, tags={k: v for k, v in state.tags.items() if k != key})
        case DatasetInputLogged():
            return replace(state, datasets=(*state.datasets, event))
        case RunFinished(status=status, end_time_ms=end):
            return replace(state, status=status, end_time_ms=end)
        case RunDeleted():
            return replace(state, deleted=True)
        case RunRestored():
            return replace(state, deleted=False)
    return state


run_decider: Decider[RunCommand, RunState] = Decider(RunState(), decide_run, evolve_run)
