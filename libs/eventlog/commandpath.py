"""A memoised command path: load -> decide -> append with the loaded version, as `handle` does, with
two differences that hot streams (a registered model, a monitor) need.

- Folded states are memoised per stream with the version they reflect (only ever from committed
  events: what this process appended, or read from the log). A command is decided on the memo and
  appended with the memo's version, so a stale memo (another process wrote the stream) cannot act: the
  append conflicts, and the command is decided again on the log's tail. A refusal is only returned
  after the tail confirmed the memo was current. So the common case costs no read at all, and a model
  stream that grew with every alias move and approval is never decoded whole again.
- Writers of one stream take turns inside the process, so 20 clients moving aliases of one model do
  not all read the same version and conflict; other processes are still kept honest by the expected
  version, and a conflict decides again on the fresh state.

As in tracking's path, a command the rules refuse but whose idempotency key the stream has already
seen (a retry of a call that succeeded) returns the first result instead of the refusal.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from eventlog import (
    AppendResult,
    ConcurrencyConflict,
    Decider,
    DomainEvent,
    EventRegistry,
    EventStore,
    Metadata,
    ModelogError,
    NewEvent,
)
from eventlog.locks import StreamLocks

S = TypeVar("S")
C = TypeVar("C")
Check = Callable[[S], None]
MAX_KEY = 128  # eventlog.Metadata's limit for idempotency keys


def derive_key(scope: str, key: str | None) -> str | None:
    """The idempotency key of one append made for a call, scoped by what the append does."""
    if key is None:
        return None
    derived = f"{scope}/{key}"
    if len(derived) <= MAX_KEY:
        return derived
    return f"{scope}/sha256:{hashlib.sha256(key.encode()).hexdigest()}"[:MAX_KEY]


def new_id(scope: str, key: str | None) -> str:
    """A fresh id, or for a call with an idempotency key the same id on every retry of that call."""
    if key is None:
        return uuid.uuid4().hex
    return hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()[:32]


def _run(decider: Decider[C, S], command: C, state: S, check: Check[S] | None) -> list[DomainEvent]:
    if check is not None:
        check(state)
    return list(decider.decide(command, state))


@dataclass(frozen=True)
class Executed(Generic[S]):
    """What a command did: the events it recorded (or, for a retry, those its first attempt recorded)."""

    events: Sequence[DomainEvent]
    state: S
    result: AppendResult | None
    replayed: bool = False


class CommandPath:
    def __init__(
        self,
        store: EventStore,
        *,
        memo_size: int = 10_000,
        conflict_retries: int = 30,
        events: EventRegistry,
    ) -> None:
        """`events` decodes the log's events."""
        self.store = store
        self.events = events
        self.memo_size = memo_size
        self.conflict_retries = conflict_retries
        self.locks = StreamLocks()
        self._memo: OrderedDict[tuple[int, str], tuple[Any, int]] = OrderedDict()

    def _remember(self, decider: Decider[C, S], stream_id: str, state: S, version: int) -> None:
        key = (id(decider), stream_id)
        self._memo[key] = (state, version)
        self._memo.move_to_end(key)
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)

    async def load(self, decider: Decider[C, S], stream_id: str) -> tuple[S, int]:
        """The stream's current state and version: the memo plus whatever the log has after it."""
        state, version = self._memo.get((id(decider), stream_id), (decider.initial, 0))
        tail = await self.store.read_stream(stream_id, version + 1)
        if tail:
            state = decider.fold([r.decode(self.events) for r in tail], state)
            version = tail[-1].stream_version
            self._remember(decider, stream_id, state, version)
        return state, version

    async def _decide(
        self, decider: Decider[C, S], stream_id: str, command: C, check: Check[S] | None, fresh: bool
    ) -> tuple[S, int, list[DomainEvent]]:
        """Decide on the memo. A refusal, or a decision to do nothing, is only trusted once the log's
        tail confirmed the memo was current; otherwise the command is decided on the fresh state."""
        memo = self._memo.get((id(decider), stream_id))
        if memo is None or fresh:
            state, version = await self.load(decider, stream_id)
            return state, version, _run(decider, command, state, check)
        state, version = memo
        try:
            events = _run(decider, command, state, check)
        except ModelogError:
            events = None
        if events:
            return state, version, events
        latest, latest_version = await self.load(decider, stream_id)
        if latest_version == version and events is not None:
            return state, version, events
        return latest, latest_version, _run(decider, command, latest, check)

    async def execute(
        self,
        decider: Decider[C, S],
        stream_id: str,
        command: C,
        metadata: Metadata,
        *,
        check: Check[S] | None = None,
    ) -> Executed[S]:
        """`check` runs on the state before deciding (say, that a model id still has the name the
        caller resolved); what it raises is refused like a rule's refusal."""
        async with self.locks.hold(stream_id):
            attempt = 0
            while True:
                try:
                    state, version, events = await self._decide(
                        decider, stream_id, command, check, attempt > 0
                    )
                except ModelogError:
                    prior = await self._prior(stream_id, metadata.idempotency_key)
                    if prior is None:
                        raise
                    state, _ = await self.load(decider, stream_id)
                    return await self._replay(prior, state)
                if not events:
                    return Executed([], state, None)
                try:
                    result = await self.store.append(
                        stream_id, version, [NewEvent.of(e) for e in events], metadata
                    )
                except ConcurrencyConflict:
                    attempt += 1
                    if attempt > self.conflict_retries:
                        raise
                    # Another process wrote the stream meanwhile. Each attempt loses only to a write
                    # that lands between its read and its commit, so losing 30 in a row takes a storm
                    # on one model; a jittered pause keeps two processes from colliding in lockstep.
                    await asyncio.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 4)))
                    continue
                if result.replayed:
                    state, _ = await self.load(decider, stream_id)
                    return await self._replay(result, state)
                state = decider.fold(events, state)
                self._remember(decider, stream_id, state, result.stream_version)
                return Executed(events, state, result)

    async def _prior(self, stream_id: str, key: str | None) -> AppendResult | None:
        """What an earlier append with this idempotency key to this stream recorded, if any."""
        if key is None:
            return None
        row = await self.store.pool.fetchrow(
            f"SELECT min(position), max(position), max(stream_version) FROM {self.store.log}.events "
            "WHERE idempotency_key = $1 AND stream_id = $2",
            key,
            stream_id,
        )
        if row is None or row[0] is None:
            return None
        return AppendResult(stream_id, row[0], row[1], row[2], replayed=True)

    async def _replay(self, prior: AppendResult, state: S) -> Executed[S]:
        # One command's events sit at consecutive positions (the appender lays them out together).
        recorded = await self.store.read_log(
            prior.first_position, prior.last_position - prior.first_position + 1
        )
        events = [r.decode(self.events) for r in recorded if r.stream_id == prior.stream_id]
        return Executed(events, state, prior, replayed=True)
