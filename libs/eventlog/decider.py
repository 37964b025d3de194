"""The decider: an aggregate as three pure things (conventions.md). The command path that runs deciders
against the log is `eventlog.commandpath`; this module stays free of I/O so domain tests need no store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Generic, TypeVar

from eventlog.events import DomainEvent

S = TypeVar("S")
C = TypeVar("C")


@dataclass(frozen=True)
class Decider(Generic[C, S]):
    """`skips` names event types that `evolve` leaves the state unchanged for: the command path loads a
    stream without decoding them (a run's metric batches, which no run rule reads)."""

    initial: S
    decide: Callable[[C, S], Sequence[DomainEvent]]
    evolve: Callable[[S, DomainEvent], S]
    skips: frozenset[str] = field(default=frozenset())

    def fold(self, events: Sequence[DomainEvent], state: S | None = None) -> S:
        return reduce(self.evolve, events, self.initial if state is None else state)


def in_turn(decider: Decider[C, S]) -> Decider[Sequence[C], S]:
    """Several commands on one stream decided in turn, each on the state the previous left, and
    appended together: all or none (a run started with its params)."""

    def decide(commands: Sequence[C], state: S) -> list[DomainEvent]:
        events: list[DomainEvent] = []
        for cmd in commands:
            new = decider.decide(cmd, state)
            state = decider.fold(new, state)
            events.extend(new)
        return events

    return Decider(decider.initial, decide, decider.evolve, decider.skips)
