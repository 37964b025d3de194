"""The tracking command path: eventlog.handle's load -> decide -> append, with two tracking-specific loads.

A run stream is mostly MetricsLogged events, which no run rule reads (they only count points), yet the
generic load decodes every one of them: the cost of a command would grow with every batch ever logged.
So a run is loaded from its stream without MetricsLogged payloads, and a metric batch is decided on the
run's inline view row, appended with the stream version that row reflects: if anything happened to the
run since, the append conflicts and the batch is decided again on the full stream. Nothing is cached.

Retries replay as in eventlog.handle (a batch resent after its run finished is not refused), but the key
is looked up only when the rules refuse: a retry the rules accept reaches the store, which replays it
itself, so the hot path spends no query on it.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from itertools import islice
from typing import TypeVar

from eventlog import (
    AppendResult,
    ConcurrencyConflict,
    Decider,
    DomainEvent,
    EventStore,
    Metadata,
    ModelogError,
    NewEvent,
    Outcome,
    load,
)

from .domain import LogMetrics, RunCommand, RunState, evolve_run, run_decider, run_stream_id
from .events import MetricsLogged, registry
from .projections import VIEWS

S = TypeVar("S")
C = TypeVar("C")


async def prior_result(store: EventStore, stream_id: str, key: str | None) -> AppendResult | None:
    """What an earlier append with this idempotency key to this stream recorded, if any."""
    if key is None:
        return None
    prior = await store.find_idempotent(key)
    return prior if prior is not None and prior.stream_id == stream_id else None


def _decide_in_turn(commands: Sequence[RunCommand], state: RunState) -> list[DomainEvent]:
    events: list[DomainEvent] = []
    for cmd in commands:
        new = run_decider.decide(cmd, state)
        state = run_decider.fold(new, state)
        events.extend(new)
    return events


start_decider: Decider[Sequence[RunCommand], RunState] = Decider(RunState(), _decide_in_turn, evolve_run)
"""Several run commands decided in turn and appended together (StartRun with its params: all or none)."""

Loader = Callable[[], Awaitable[tuple[S, int]]]


async def execute(
    store: EventStore,
    decider: Decider[C, S],
    stream_id: str,
    command: C,
    metadata: Metadata,
    *,
    loader: Loader[S] | None = None,
    conflict_retries: int = 5,
) -> Outcome[S]:
    """Load, decide, append with the loaded version; re-decide on a conflict with a concurrent writer."""

    async def generic() -> tuple[S, int]:
        return await load(store, registry, decider, stream_id)

    read = loader or generic
    attempt = 0
    while True:
        state, version = await read()
        try:
            events = list(decider.decide(command, state))
        except ModelogError:
            prior = await prior_result(store, stream_id, metadata.idempotency_key)
            if prior is None:
                raise
            return Outcome([], state, prior)
        try:
            result = await store.append(stream_id, version, [NewEvent.of(e) for e in events], metadata)
        except ConcurrencyConflict:
            attempt += 1
            if attempt > conflict_retries:
                raise
            continue
        if result.replayed:
            state, _ = await read()
            return Outcome([], state, result)
        return Outcome(events, decider.fold(events, state), result)


async def load_run(store: EventStore, run_id: str) -> tuple[RunState, int]:
    """A run's state and version from its stream, reading every event but the MetricsLogged payloads."""
    stream_id = run_stream_id(run_id)
    rows = await store.pool.fetch(
        f"SELECT stream_version, type, schema_version, payload::text FROM {store.log}.events "
        "WHERE stream_id = $1 AND type <> $2 "
        "UNION ALL SELECT max(stream_version), NULL, NULL, NULL "
        f"FROM {store.log}.events WHERE stream_id = $1 ORDER BY 1",
        stream_id,
        MetricsLogged.type,
    )
    version = max((r[0] for r in rows if r[0] is not None), default=0)
    events = [registry.decode(r[1], r[2], json.loads(r[3])) for r in rows if r[1] is not None]
    return run_decider.fold(events), version


def grouped_by_key(cmd: LogMetrics) -> LogMetrics:
    """The same points with each key's together, in their original order (a stable sort by key): the
    view then stores each key's chunk as one slice of the event's arrays instead of sorting points."""
    keys = cmd.keys
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


async def log_metrics(store: EventStore, command: LogMetrics, metadata: Metadata) -> AppendResult:
    """Decide a batch on the run's view row (status and deletion are all the rule reads), append with
    the version that row reflects, and fall back to the full path when the run moved meanwhile."""
    if len(command.keys) == len(command.values) == len(command.steps) == len(command.timestamps_ms):
        command = grouped_by_key(command)  # (misaligned columns are left for the rules to refuse)
    stream_id = run_stream_id(command.run_id)
    row = await store.pool.fetchrow(
        f"SELECT experiment_id, status, deleted, version FROM {VIEWS.runs} WHERE run_id = $1", command.run_id
    )
    if row is not None:
        state = RunState(run_id=command.run_id, experiment_id=row[0], status=row[1], deleted=row[2])
        try:
            events = run_decider.decide(command, state)
        except ModelogError:
            prior = await prior_result(store, stream_id, metadata.idempotency_key)
            if prior is None:
                raise
            return prior
        try:
            return await store.append(stream_id, row[3], [NewEvent.of(e) for e in events], metadata)
        except ConcurrencyConflict:
            pass

    async def full() -> tuple[RunState, int]:
        return await load_run(store, command.run_id)

    outcome = await execute(store, run_decider, stream_id, command, metadata, loader=full)
    return outcome.result
