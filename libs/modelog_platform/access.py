"""Projects, grants and groups: events in the platform's `identity` log, beside the tokens.

A grant gives a token (or `group:<name>`, every token in a group) a permission on a project, an
experiment or a registered model. Because grants are events, "who could approve Production on 1 March"
is the same fold of the log stopped at that instant (`AccessState.fold`), which the inline view also
follows for the present.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from eventlog import (
    AlreadyExists,
    Decider,
    DomainEvent,
    EventStore,
    InvalidArgument,
    Metadata,
    NotFound,
    RecordedEvent,
)
from eventlog.commandpath import CommandPath
from eventlog.projection import Projection, Tables
from modelog.shared.inputs import unsafe_character
from modelog_platform.authz import DEFAULT_PROJECT, GRANTABLE, SCOPE_KINDS, Grant, Perm
from modelog_platform.identity import LOG, registry

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
MAX_SCOPE = 256
DEFAULT_DESCRIPTION = "everything that existed before projects, and what names no project"
CACHE_TTL_S = 1.0
"""A grant or its removal takes effect in every serving process within this long."""


@registry.register
class ProjectCreated(DomainEvent):
    name: str
    description: str = ""


@registry.register
class GrantAdded(DomainEvent):
    principal: str
    scope_kind: str
    scope: str
    permission: str


@registry.register
class GrantRemoved(DomainEvent):
    principal: str
    scope_kind: str
    scope: str
    permission: str


@registry.register
class GroupMemberAdded(DomainEvent):
    group: str
    member: str


@registry.register
class GroupMemberRemoved(DomainEvent):
    group: str
    member: str


ACCESS_EVENTS = frozenset(
    {"ProjectCreated", "GrantAdded", "GrantRemoved", "GroupMemberAdded", "GroupMemberRemoved"}
)

# ---------------------------------------------------------------- validation


def project_name(name: str, field_name: str = "project") -> str:
    if not _NAME.match(name):
        raise InvalidArgument.field(
            field_name,
            f"{name!r} is not a project name: 1-64 of a-z, 0-9, '.', '_', '-', starting alphanumeric",
        )
    return name


def principal_name(principal: str) -> str:
    """A token name, or `group:<name>`."""
    kind, sep, rest = principal.partition(":")
    name = rest if sep else kind
    if (sep and kind != "group") or not _NAME.match(name):
        raise InvalidArgument.field(
            "principal", f"{principal!r} is not a token name or group:<name> (a-z, 0-9, '.', '_', '-')"
        )
    return principal


def grant_of(principal: str, scope_kind: str, scope: str, permission: str) -> Grant:
    principal_name(principal)
    if scope_kind not in SCOPE_KINDS:
        raise InvalidArgument.field("scope_kind", f"{scope_kind!r}: one of {', '.join(SCOPE_KINDS)}")
    if not 1 <= len(scope) <= MAX_SCOPE or unsafe_character(scope):
        raise InvalidArgument.field(
            "scope", f"1-{MAX_SCOPE} characters, no control, bidirectional or invisible ones"
        )
    if scope_kind == "project":
        project_name(scope, "scope")
    try:
        perm = Perm(permission.upper())
    except ValueError:
        perm = None
    if perm not in GRANTABLE:
        raise InvalidArgument.field(
            "permission", f"{permission!r}: one of {', '.join(GRANTABLE)} (ADMIN is the admin role)"
        )
    return Grant(principal, scope_kind, scope, perm)


# ---------------------------------------------------------------- deciders


@dataclass(frozen=True)
class CreateProject:
    name: str
    description: str = ""


@dataclass(frozen=True)
class AddGrant:
    grant: Grant


@dataclass(frozen=True)
class RemoveGrant:
    grant: Grant


@dataclass(frozen=True)
class AddMember:
    group: str
    member: str


@dataclass(frozen=True)
class RemoveMember:
    group: str
    member: str


AccessCommand = CreateProject | AddGrant | RemoveGrant | AddMember | RemoveMember


@dataclass(frozen=True)
class StreamState:
    """One stream's state: a project (exists), a principal's grants, or a group's members."""

    exists: bool = False
    items: frozenset[tuple[str, ...]] = frozenset()


def decide(cmd: AccessCommand, state: StreamState) -> Sequence[DomainEvent]:
    if isinstance(cmd, CreateProject):
        if state.exists or cmd.name == DEFAULT_PROJECT:
            raise AlreadyExists(f"a project named {cmd.name!r} already exists")
        return [ProjectCreated(name=cmd.name, description=cmd.description)]
    if isinstance(cmd, AddGrant | RemoveGrant):
        g = cmd.grant
        key = (g.scope_kind, g.scope, str(g.perm))
        fields = {
            "principal": g.principal,
            "scope_kind": g.scope_kind,
            "scope": g.scope,
            "permission": g.perm,
        }
        if isinstance(cmd, AddGrant):
            return [] if key in state.items else [GrantAdded(**fields)]
        if key not in state.items:
            raise NotFound(f"{g.principal!r} holds no {g.perm} grant on {g.scope_kind} {g.scope!r}")
        return [GrantRemoved(**fields)]
    if isinstance(cmd, AddMember):
        return [] if (cmd.member,) in state.items else [GroupMemberAdded(group=cmd.group, member=cmd.member)]
    if (cmd.member,) not in state.items:
        raise NotFound(f"{cmd.member!r} is not in group {cmd.group!r}")
    return [GroupMemberRemoved(group=cmd.group, member=cmd.member)]


def evolve(state: StreamState, event: DomainEvent) -> StreamState:
    if isinstance(event, ProjectCreated):
        return StreamState(exists=True)
    if isinstance(event, GrantAdded | GrantRemoved):
        key = (event.scope_kind, event.scope, event.permission)
        items = state.items | {key} if isinstance(event, GrantAdded) else state.items - {key}
        return StreamState(True, items)
    if isinstance(event, GroupMemberAdded):
        return StreamState(True, state.items | {(event.member,)})
    if isinstance(event, GroupMemberRemoved):
        return StreamState(True, state.items - {(event.member,)})
    return state


access_decider: Decider[AccessCommand, StreamState] = Decider(StreamState(), decide, evolve)


def stream_of(cmd: AccessCommand) -> str:
    if isinstance(cmd, CreateProject):
        return f"project-{cmd.name}"
    if isinstance(cmd, AddGrant | RemoveGrant):
        return f"grants-{cmd.grant.principal}"
    return f"group-{cmd.group}"


# ---------------------------------------------------------------- the whole picture, at any instant


@dataclass
class AccessState:
    """Every project, grant and group membership, folded from the log (for any instant)."""

    projects: dict[str, str] = field(default_factory=lambda: {DEFAULT_PROJECT: DEFAULT_DESCRIPTION})
    grants: set[Grant] = field(default_factory=set)
    members: dict[str, set[str]] = field(default_factory=dict)

    def apply(self, event: DomainEvent) -> None:
        if isinstance(event, ProjectCreated):
            self.projects[event.name] = event.description
        elif isinstance(event, GrantAdded):
            self.grants.add(Grant(event.principal, event.scope_kind, event.scope, Perm(event.permission)))
        elif isinstance(event, GrantRemoved):
            self.grants.discard(Grant(event.principal, event.scope_kind, event.scope, Perm(event.permission)))
        elif isinstance(event, GroupMemberAdded):
            self.members.setdefault(event.group, set()).add(event.member)
        elif isinstance(event, GroupMemberRemoved):
            self.members.get(event.group, set()).discard(event.member)

    @classmethod
    def fold(cls, events: Iterable[DomainEvent]) -> AccessState:
        state = cls()
        for ev in events:
            state.apply(ev)
        return state

    def groups_of(self, token: str) -> frozenset[str]:
        return frozenset(g for g, members in self.members.items() if token in members)

    def grants_of(self, token: str) -> tuple[Grant, ...]:
        principals = {token, *(f"group:{g}" for g in self.groups_of(token))}
        return tuple(sorted((g for g in self.grants if g.principal in principals), key=_order))


def _order(g: Grant) -> tuple[str, str, str, str]:
    return (g.principal, g.scope_kind, g.scope, g.perm)


# ---------------------------------------------------------------- the view (inline: a grant works at once)


class AccessView(Projection):
    name = "access"
    schema = LOG
    sources = (LOG,)
    tables = ("projects", "grants", "group_members")
    handles = ACCESS_EVENTS

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.projects} (
    name        text PRIMARY KEY,
    description text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE TABLE {t.grants} (
    principal  text NOT NULL,
    scope_kind text NOT NULL,
    scope      text NOT NULL,
    permission text NOT NULL,
    granted_by text NOT NULL,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (principal, scope_kind, scope, permission)
);
CREATE TABLE {t.group_members} (
    grp    text NOT NULL,
    member text NOT NULL,
    PRIMARY KEY (grp, member)
);
CREATE INDEX ON {t.group_members} (member);
"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        for ev in events:
            e = ev.decode(registry)
            actor = ev.metadata().actor
            if isinstance(e, ProjectCreated):
                await conn.execute(
                    f"INSERT INTO {t.projects} VALUES ($1, $2, $3, $4)",
                    e.name,
                    e.description,
                    actor,
                    ev.recorded_at,
                )
            elif isinstance(e, GrantAdded):
                await conn.execute(
                    f"INSERT INTO {t.grants} VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    e.principal,
                    e.scope_kind,
                    e.scope,
                    e.permission,
                    actor,
                    ev.recorded_at,
                )
            elif isinstance(e, GrantRemoved):
                await conn.execute(
                    f"DELETE FROM {t.grants} WHERE principal = $1 AND scope_kind = $2 AND scope = $3 "
                    "AND permission = $4",
                    e.principal,
                    e.scope_kind,
                    e.scope,
                    e.permission,
                )
            elif isinstance(e, GroupMemberAdded):
                await conn.execute(
                    f"INSERT INTO {t.group_members} VALUES ($1, $2) ON CONFLICT DO NOTHING", e.group, e.member
                )
            elif isinstance(e, GroupMemberRemoved):
                await conn.execute(
                    f"DELETE FROM {t.group_members} WHERE grp = $1 AND member = $2", e.group, e.member
                )


# ---------------------------------------------------------------- the service's code (gRPC and CLI call it)


class AccessControl:
    """Changes and reads of projects, grants and groups; what the interceptor asks for a caller."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.commands = CommandPath(store, events=registry)
        self._cache: dict[str, tuple[float, tuple[Grant, ...], frozenset[str]]] = {}

    async def change(self, cmd: AccessCommand, metadata: Metadata) -> bool:
        """Apply one command; False when it changed nothing (the grant or membership was there)."""
        outcome = await self.commands.execute(access_decider, stream_of(cmd), cmd, metadata)
        self._cache.clear()
        return bool(outcome.events)

    async def project_exists(self, name: str) -> bool:
        if name == DEFAULT_PROJECT:
            return True
        return bool(
            await self.store.pool.fetchval(f"SELECT count(*) FROM {LOG}.projects WHERE name = $1", name)
        )

    async def projects(self) -> list[asyncpg.Record]:
        return list(
            await self.store.pool.fetch(
                f"SELECT name, description, created_by, created_at FROM {LOG}.projects ORDER BY name"
            )
        )

    async def grants_for(self, token: str) -> tuple[tuple[Grant, ...], frozenset[str]]:
        """The token's grants (its own and its groups'), cached for CACHE_TTL_S."""
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and now - hit[0] < CACHE_TTL_S:
            return hit[1], hit[2]
        async with self.store.pool.acquire() as conn:
            groups = frozenset(
                r[0]
                for r in await conn.fetch(f"SELECT grp FROM {LOG}.group_members WHERE member = $1", token)
            )
            rows = await conn.fetch(
                f"SELECT principal, scope_kind, scope, permission FROM {LOG}.grants "
                "WHERE principal = ANY($1)",
                [token, *(f"group:{g}" for g in groups)],
            )
        grants = tuple(sorted((Grant(r[0], r[1], r[2], Perm(r[3])) for r in rows), key=_order))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now, grants, groups)
        return grants, groups

    async def state(self, as_of: datetime | None = None) -> AccessState:
        """Projects, grants and groups now, or as of an instant (folded from the log up to it)."""
        rows = await self.store.pool.fetch(
            f"SELECT type, schema_version, payload::text FROM {LOG}.events "
            "WHERE type = ANY($1) AND ($2::timestamptz IS NULL OR recorded_at <= $2) ORDER BY position",
            sorted(ACCESS_EVENTS),
            as_of,
        )
        return AccessState.fold(registry.decode(r[0], r[1], json.loads(r[2])) for r in rows)
