"""Unique names across streams, written once for every service that needs them.

No entity stream can know that its name is free (experiment names, model names): the service claims
the name in a stream of its own (one per name) before creating or renaming the entity, and optimistic
concurrency on that stream lets exactly one of two concurrent claims win. A deleted entity keeps its
name. The claim, the entity's command and the release of a name form one operation over several
streams; `UniqueNames` shields it from the caller's cancellation, so a client that hangs up between
the claim and the create cannot strand the name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from eventlog.commandpath import CommandPath
from eventlog.decider import Decider
from eventlog.errors import AlreadyExists, FailedPrecondition
from eventlog.events import DomainEvent, Metadata

T = TypeVar("T")


@dataclass(frozen=True)
class Claim:
    name: str
    holder: str


@dataclass(frozen=True)
class Release:
    name: str
    holder: str


NameCommand = Claim | Release


@dataclass(frozen=True)
class NameClaimState:
    holder: str | None = None


def name_claims(
    *,
    what: str,
    claimed: type[DomainEvent],
    released: type[DomainEvent],
    holder_field: str,
    check: Callable[[str], object],
) -> Decider[NameCommand, NameClaimState]:
    """The claim decider of one kind of entity. Its events keep the service's own types and field
    name (`model_id`, `experiment_id`), so logs written before this module existed read the same."""

    a = "an" if what[:1] in "aeiou" else "a"

    def decide(cmd: NameCommand, state: NameClaimState) -> Sequence[DomainEvent]:
        if isinstance(cmd, Claim):
            check(cmd.name)
            if state.holder == cmd.holder:
                return []  # a retried claim
            if state.holder is not None:
                raise AlreadyExists(f"{a} {what} named {cmd.name!r} already exists (id {state.holder!r})")
            return [claimed.model_validate({"name": cmd.name, holder_field: cmd.holder})]
        if state.holder is None:
            return []  # a retried release
        if state.holder != cmd.holder:
            raise FailedPrecondition(
                f"{what} name {cmd.name!r} belongs to {what} {state.holder!r}, not {cmd.holder!r}; "
                "only its holder may release it"
            )
        return [released.model_validate({"name": cmd.name, holder_field: cmd.holder})]

    def evolve(state: NameClaimState, event: DomainEvent) -> NameClaimState:
        if isinstance(event, claimed):
            return NameClaimState(holder=getattr(event, holder_field))
        if isinstance(event, released):
            return NameClaimState()
        return state

    return Decider(NameClaimState(), decide, evolve)


class UniqueNames:
    """Claims and releases of one kind of name, and the shielded operations built on them."""

    def __init__(
        self, path: CommandPath, decider: Decider[NameCommand, NameClaimState], stream: Callable[[str], str]
    ) -> None:
        self.path = path
        self.decider = decider
        self.stream = stream

    async def _on(self, cmd: NameCommand, metadata: Metadata) -> None:
        # Claims carry no idempotency key: the decider is idempotent by itself (a retry decides again),
        # and the caller's key belongs to the entity's command.
        unkeyed = metadata.model_copy(update={"idempotency_key": None})
        await self.path.execute(self.decider, self.stream(cmd.name), cmd, unkeyed)

    async def holder(self, name: str) -> str | None:
        state, _ = await self.path.load(self.decider, self.stream(name))
        return state.holder

    async def create(self, name: str, holder: str, act: Callable[[], Awaitable[T]], metadata: Metadata) -> T:
        """Claim `name`, then `act`; a failed act releases the name again."""
        return await asyncio.shield(self._claimed(name, holder, act, metadata))

    async def rename(
        self,
        new: str,
        holder: str,
        act: Callable[[], Awaitable[T]],
        previous: Callable[[T], Iterable[str]],
        metadata: Metadata,
    ) -> T:
        """Claim `new`, `act`, then release each name `previous` finds in what the act did (the name
        the entity had when the rename landed, also after a retry)."""
        return await asyncio.shield(self._renamed(new, holder, act, previous, metadata))

    async def _claimed(
        self, name: str, holder: str, act: Callable[[], Awaitable[T]], metadata: Metadata
    ) -> T:
        await self._on(Claim(name, holder), metadata)
        try:
            return await act()
        except Exception:
            await self._on(Release(name, holder), metadata)
            raise

    async def _renamed(
        self,
        new: str,
        holder: str,
        act: Callable[[], Awaitable[T]],
        previous: Callable[[T], Iterable[str]],
        metadata: Metadata,
    ) -> T:
        done = await self._claimed(new, holder, act, metadata)
        for old in previous(done):
            with contextlib.suppress(FailedPrecondition):  # a retry: another entity may hold it now
                await self._on(Release(old, holder), metadata)
        return done
