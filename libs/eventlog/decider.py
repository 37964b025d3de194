"""The command path every service uses: load stream -> fold -> decide -> append with expected version.

Written once here so that services stay translators and deciders stay pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Generic, TypeVar

from eventlog.errors import ConcurrencyConflict, IdempotencyKeyReused
from eventlog.events import DomainEvent, EventRegistry, Metadata
from eventlog.records import AppendResult, NewEvent
from eventlog.store import EventStore

S = TypeVar("S")
C = TypeVar("C")


@dataclass(frozen=True)
class Decider(Generic[C, S]):
    """An aggregate as three pure things (conventions.md: the decider)."""

    initial: S
    decide: Callable[[C, S], Sequence[DomainEvent]]
    evolve: Callable[[S, DomainEvent], S]

    def fold(self, events: Sequence[DomainEvent], state: S | None = None) -> S:
        return reduce(self.evolve, events, self.initial if state is None else state)


@dataclass(frozen=True)
class Outcome(Generic[S]):
    events: Sequence[DomainEvent]
    state: S
    result: AppendResult


async def load(
    store: EventStore, registry: EventRegistry, decider: Decider[C, S], stream_id: str
) -> tuple[S, int]:
    """Current state of a stream and its version (0 when it does not exist)."""
    recorded = await store.read_stream(stream_id)
    state = decider.fold([r.decode(registry) for r in recorded])
    return state, (recorded[-1].stream_version if recorded else 0)


async def handle(
    store: EventStore,
    registry: EventRegistry,
    decider: Decider[C, S],
    stream_id: str,
    command: C,
    metadata: Metadata,
    *,
    expected_version: int | None = None,
    conflict_retries: int = 3,
) -> Outcome[S]:
    """Decide on fresh state and append. A caller-given `expected_version` is checked as is; without
    one, a conflict with a concurrent writer re-reads and re-decides (the rules run on the new state).
    """
    if metadata.idempotency_key:
        # A retry returns the first result even if deciding again would now refuse the command
        # (a create retried after it succeeded must not become "already exists").
        prior = await store.find_idempotent(metadata.idempotency_key)
        if prior is not None:
            if prior.stream_id != stream_id:
                raise IdempotencyKeyReused(
                    f"idempotency key {metadata.idempotency_key!r} was already used for stream "
                    f"{prior.stream_id!r} in the {store.log} log; use a new key for a different command"
                )
            state, _ = await load(store, registry, decider, stream_id)
            return Outcome([], state, prior)
    attempt = 0
    while True:
        state, version = await load(store, registry, decider, stream_id)
        if expected_version is not None and expected_version != version:
            raise ConcurrencyConflict(store.log, stream_id, expected_version, version)
        events = list(decider.decide(command, state))
        try:
            result = await store.append(stream_id, version, [NewEvent.of(e) for e in events], metadata)
        except ConcurrencyConflict:
            attempt += 1
            if expected_version is not None or attempt > conflict_retries:
                raise
            continue
        if result.replayed:
            state, _ = await load(store, registry, decider, stream_id)
            return Outcome([], state, result)
        return Outcome(events, decider.fold(events, state), result)
