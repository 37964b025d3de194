"""Runs: started in a live experiment, given params, metrics, tags and dataset inputs, renamed,
finished, deleted and restored. A finished run still takes annotations (name, tags); a deleted one
takes nothing until it is restored.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice

from pydantic import ValidationError

from eventlog import (
    AlreadyExists,
    Decider,
    DomainEvent,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from eventlog.decider import in_turn
from eventlog.errors import Resource

from .checks import (
    MAX_DATASET_DOCUMENT,
    MAX_DATASET_NAME,
    MAX_DATASET_SOURCE,
    MAX_DIGEST,
    MAX_KEY,
    MAX_METRIC_POINTS,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    changed_entries,
    check_entries,
    check_id,
    check_input_tags,
    check_int64,
    check_key,
    check_name,
    check_text,
    check_time,
    invalid,
)
from .events import (
    TERMINAL_STATUSES,
    DatasetInputLogged,
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

_TERMINAL: dict[str, TerminalStatus] = {s: s for s in TERMINAL_STATUSES}


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
    tags: Mapping[str, str] = field(default_factory=dict)


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


def run_not_found(run_id: str) -> NotFound:
    """Names the run as the error's resource, so the MLflow surface can say it in MLflow's words."""
    return NotFound(f"run {run_id!r} does not exist", resource=Resource("run", run_id))


RUN_DELETED = "RUN_DELETED"
"""The reason of a refused write to a deleted run: MLflow's gateway answers it as MLflow does."""


def run_deleted(run_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"run {run_id!r} is deleted; restore it before changing it",
        reason=RUN_DELETED,
        metadata={"run_id": run_id},
    )


def _require_writable(state: RunState, run_id: str, *, annotation: bool = False) -> None:
    """Deleted runs accept nothing; finished runs accept annotations (tags, a new name) but no data."""
    if state.deleted:
        raise run_deleted(run_id)
    if not annotation and state.status != "RUNNING":
        raise FailedPrecondition(f"run {run_id!r} is {state.status}; a finished run accepts no more data")


def _start(cmd: StartRun) -> RunStarted:
    check_id("run_id", cmd.run_id)
    check_id("experiment_id", cmd.experiment_id)
    check_name("name", cmd.name)
    check_time("start_time_ms", cmd.start_time_ms)
    if cmd.parent_run_id is not None:
        check_id("parent_run_id", cmd.parent_run_id)
        if cmd.parent_run_id == cmd.run_id:
            invalid("parent_run_id", "a run cannot be its own parent")
    for part, value in cmd.source.model_dump().items():
        check_text(f"source.{part}", value, MAX_TAG_VALUE)
    check_entries("tags", cmd.tags, MAX_TAG_VALUE)
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
    check_entries("params", cmd.params, MAX_PARAM_VALUE)
    for key, value in cmd.params.items():
        old = state.params.get(key)
        if old is not None and old != value:
            invalid(
                f"params[{key!r}]",
                f"param {key!r} of run {cmd.run_id!r} was already logged as {old[:100]!r}; "
                f"params are set once, so {value[:100]!r} cannot replace it (log it under a new key)",
            )
    new = {k: v for k, v in cmd.params.items() if k not in state.params}
    return [ParamsLogged(params=new)] if new else []


def _log_metrics(cmd: LogMetrics) -> list[DomainEvent]:
    n = len(cmd.keys)
    if not len(cmd.values) == len(cmd.steps) == len(cmd.timestamps_ms) == n:
        invalid(
            "metrics",
            f"columns differ in length: {n} keys, {len(cmd.values)} values, "
            f"{len(cmd.steps)} steps, {len(cmd.timestamps_ms)} timestamps",
        )
    if n > MAX_METRIC_POINTS:
        invalid("metrics", f"{n} points in one batch; the limit is {MAX_METRIC_POINTS}, split the batch")
    if n == 0:
        return []
    for key in set(cmd.keys):
        check_key(f"metrics[{key!r}]", key)
    check_int64("steps", cmd.steps)
    check_int64("timestamps_ms", cmd.timestamps_ms)
    try:
        event = MetricsLogged(
            keys=tuple(cmd.keys),
            values=tuple(cmd.values),
            steps=tuple(cmd.steps),
            timestamps_ms=tuple(cmd.timestamps_ms),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        invalid(".".join(str(p) for p in first["loc"]) or "metrics", first["msg"])
    return [event]


def _log_dataset(cmd: LogDatasetInput, state: RunState) -> list[DomainEvent]:
    check_name("name", cmd.name, MAX_DATASET_NAME)
    if not cmd.digest:
        invalid("digest", "must not be empty")
    check_text("digest", cmd.digest, MAX_DIGEST)
    check_text("source_type", cmd.source_type, MAX_KEY)
    check_text("source", cmd.source, MAX_DATASET_SOURCE)
    if cmd.context is not None:
        check_name("context", cmd.context)
    check_text("dataset_schema", cmd.dataset_schema, MAX_DATASET_DOCUMENT)
    check_text("dataset_profile", cmd.dataset_profile, MAX_DATASET_DOCUMENT)
    check_input_tags(cmd.tags)
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
            tags=dict(cmd.tags),
        )
    ]


def _finish(cmd: FinishRun, state: RunState) -> list[DomainEvent]:
    status = _TERMINAL.get(cmd.status)
    if status is None:
        invalid("status", f"{cmd.status!r} does not finish a run; use one of {', '.join(TERMINAL_STATUSES)}")
    check_time("end_time_ms", cmd.end_time_ms)
    if state.deleted:
        raise run_deleted(cmd.run_id)
    if state.status != "RUNNING":
        raise FailedPrecondition(f"run {cmd.run_id!r} already finished as {state.status}")
    return [RunFinished(status=status, end_time_ms=cmd.end_time_ms)]


def decide_run(cmd: RunCommand, state: RunState) -> Sequence[DomainEvent]:
    if isinstance(cmd, StartRun):
        if state.exists:
            raise AlreadyExists(f"run {cmd.run_id!r} already exists")
        return [_start(cmd)]
    if not state.exists:
        raise run_not_found(cmd.run_id)
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
            check_entries("tags", tags, MAX_TAG_VALUE)
            changed = changed_entries(state.tags, tags)
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


run_decider: Decider[RunCommand, RunState] = Decider(
    RunState(), decide_run, evolve_run, skips=frozenset({MetricsLogged.type})
)
"""A run stream is mostly metric batches, which no run rule reads: the command path loads a run without
them, so a command's cost does not grow with every batch ever logged."""

batch_decider: Decider[Sequence[RunCommand], RunState] = in_turn(run_decider)
"""Several run commands decided in turn and appended together, all or none: StartRun with its params,
LogRunBatch's rename, params, tags, points and inputs."""


def grouped_by_key(cmd: LogMetrics) -> LogMetrics:
    """The same points with each key's together, in their original order (a stable sort by key): the
    view then stores each key's chunk as one slice of the event's arrays instead of sorting points.
    Misaligned columns are left as they are, for the rules to refuse."""
    keys = cmd.keys
    if not len(keys) == len(cmd.values) == len(cmd.steps) == len(cmd.timestamps_ms):
        return cmd
    changes = sum(map(operator.ne, keys, islice(keys, 1, None)))
    if len(keys) < 2 or changes + 1 == len(set(keys)):
        return cmd  # already grouped
    order = sorted(range(len(keys)), key=keys.__getitem__)
    pick = operator.itemgetter(*order)
    return replace(
        cmd,
        keys=list(pick(keys)),
        values=list(pick(cmd.values)),
        steps=list(pick(cmd.steps)),
        timestamps_ms=list(pick(cmd.timestamps_ms)),
    )
