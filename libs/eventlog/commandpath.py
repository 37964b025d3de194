"""The one command path: load -> decide -> append with the loaded version, for every service.

A service declares, per command type, the decider that handles it and the stream it targets (`Route`);
`send` does the rest. What the path guarantees, once for all:

- Folded states are memoised per stream with the version they reflect (only ever from committed
  events: what this process appended, or read from the log). A command is decided on the memo and
  appended with the memo's version, so a stale memo (another process wrote the stream) cannot act: the
  append conflicts, and the command is decided again on the log's tail. A refusal is only returned
  after the tail confirmed the memo was current. So the common case costs no read at all, and a stream
  that grew with every alias move is never decoded whole again.
- A stream is read without the event types its decider `skips` (a run's metric batches).
- Writers of one stream take turns inside the process, so 20 clients moving aliases of one model do
  not all read the same version and conflict; other processes are still kept honest by the expected
  version, and a conflict decides again on the fresh state, after a jittered pause.
- Idempotency keys: a retry the rules accept is replayed by the store; a retry the rules now refuse
  (a create resent after it succeeded) returns what the first attempt recorded instead of the refusal.
- Operations that span streams (a unique name claimed, then the entity created) are shielded from the
  caller's cancellation by `eventlog.nameclaims`.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar, get_args

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


@dataclass(frozen=True)
class Route(Generic[C, S]):
    """Where one command type goes: its decider, and the stream of the entity a command targets.
    `initial`, when given, makes a new stream's state from the target (an artifact's name, for the
    messages about a stream that does not exist yet)."""

    decider: Decider[C, S]
    stream: Callable[[str], str]
    initial: Callable[[str], S] | None = None


def command_map(*routes: tuple[Any, Route[Any, Any]]) -> dict[type, Route[Any, Any]]:
    """The routes of a service: each command type, or each member of a union of them, to its route."""
    out: dict[type, Route[Any, Any]] = {}
    for commands, route in routes:
        for command_type in get_args(commands) or (commands,):
            if command_type in out:
                raise TypeError(f"{command_type.__name__} has two routes")
            out[command_type] = route
    return out


class CommandPath:
    def __init__(
        self,
        store: EventStore,
        *,
        events: EventRegistry,
        routes: Mapping[type, Route[Any, Any]] | None = None,
        memo_size: int = 10_000,
        conflict_retries: int = 30,
    ) -> None:
        """`events` decodes the log's events; `routes` is the service's command map."""
        self.store = store
        self.events = events
        self.routes: dict[type, Route[Any, Any]] = dict(routes or {})
        self.memo_size = memo_size
        self.conflict_retries = conflict_retries
        self.locks = StreamLocks()
        self._memo: OrderedDict[str, tuple[Any, int, object]] = OrderedDict()

    def route(self, command_type: type) -> Route[Any, Any]:
        try:
            return self.routes[command_type]
        except KeyError:
            name = command_type.__name__
            raise TypeError(f"no route for {name}: add it to the service's command map") from None

    async def send(
        self, target: str, command: Any, metadata: Metadata, *, check: Check[Any] | None = None
    ) -> Executed[Any]:
        """`command` on the stream of `target` (an entity id or name), by the command map."""
        r = self.route(type(command))
        decider = r.decider if r.initial is None else replace(r.decider, initial=r.initial(target))
        return await self.execute(decider, r.stream(target), command, metadata, check=check)

    async def state(self, command_type: type, target: str) -> tuple[Any, int]:
        """The current state and version of the stream `command_type` would go to."""
        r = self.route(command_type)
        decider = r.decider if r.initial is None else replace(r.decider, initial=r.initial(target))
        return await self.load(decider, r.stream(target))

    def _recall(self, decider: Decider[C, S], stream_id: str) -> tuple[S, int] | None:
        memo = self._memo.get(stream_id)
        if memo is None or memo[2] is not decider.evolve:  # a state folded by another decider's rules
            return None
        return memo[0], memo[1]

    def _remember(self, decider: Decider[C, S], stream_id: str, state: S, version: int) -> None:
        self._memo[stream_id] = (state, version, decider.evolve)
        self._memo.move_to_end(stream_id)
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)

    async def load(self, decider: Decider[C, S], stream_id: str) -> tuple[S, int]:
        """The stream's current state and version: the memo plus whatever the log has after it."""
        state, version = self._recall(decider, stream_id) or (decider.initial, 0)
        tail, head = await self.store.read_stream_skipping(stream_id, version + 1, decider.skips)
        if head != version:
            state = decider.fold([r.decode(self.events) for r in tail], state)
            version = head
            self._remember(decider, stream_id, state, version)
        return state, version

    async def _decide(
        self, decider: Decider[C, S], stream_id: str, command: C, check: Check[S] | None, fresh: bool
    ) -> tuple[S, int, list[DomainEvent]]:
        """Decide on the memo. A refusal, or a decision to do nothing, is only trusted once the log's
        tail confirmed the memo was current; otherwise the command is decided on the fresh state."""
        memo = self._recall(decider, stream_id)
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
