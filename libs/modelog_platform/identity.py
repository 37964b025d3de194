"""Bearer tokens as an event-sourced aggregate in the platform's `identity` log.

Only a SHA-256 of each secret is stored. The `identity.tokens` view is updated inline (in the append
transaction) so a token works the moment CreateToken returns.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import asyncpg

from eventlog import (
    AlreadyExists,
    Decider,
    DomainEvent,
    EventRegistry,
    EventStore,
    FailedPrecondition,
    InvalidArgument,
    Metadata,
    NotFound,
    RecordedEvent,
    handle,
)
from eventlog.projection import Projection, Tables

LOG = "identity"
TOKEN_PREFIX = "mlg_"
ROLES = ("admin", "member", "viewer")
NO_ROLE = "none"
"""A token whose rights are only its grants (projects, experiments, models)."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

registry = EventRegistry()


@registry.register
class TokenIssued(DomainEvent):
    """v2 added `roles`; v1 tokens predate roles and had full access (see the upcaster below)."""

    schema_version = 2
    name: str
    token_sha256: str
    roles: tuple[str, ...]


@registry.upcaster("TokenIssued", from_version=1)
def _token_issued_v1_to_v2(payload: dict[str, object]) -> dict[str, object]:
    return {**payload, "roles": ["admin"]}


@registry.register
class TokenRevoked(DomainEvent):
    name: str


# ---------------------------------------------------------------- decider


@dataclass(frozen=True)
class CreateToken:
    name: str
    token_sha256: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class RevokeToken:
    name: str


@dataclass(frozen=True)
class TokenState:
    exists: bool = False
    revoked: bool = False
    roles: tuple[str, ...] = ()


def decide(cmd: CreateToken | RevokeToken, state: TokenState) -> Sequence[DomainEvent]:
    if isinstance(cmd, CreateToken):
        if state.exists:
            raise AlreadyExists(f"a token named {cmd.name!r} already exists; pick another name")
        return [TokenIssued(name=cmd.name, token_sha256=cmd.token_sha256, roles=cmd.roles)]
    if not state.exists:
        raise NotFound(f"no token named {cmd.name!r}")
    if state.revoked:
        raise FailedPrecondition(f"token {cmd.name!r} is already revoked")
    return [TokenRevoked(name=cmd.name)]


def evolve(state: TokenState, event: DomainEvent) -> TokenState:
    if isinstance(event, TokenIssued):
        return TokenState(exists=True, roles=event.roles)
    if isinstance(event, TokenRevoked):
        return replace(state, revoked=True)
    return state


token_decider: Decider[CreateToken | RevokeToken, TokenState] = Decider(TokenState(), decide, evolve)


def stream_id(name: str) -> str:
    return f"token-{name}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgument.field(
            "name",
            f"{name!r} is not a valid token name: 1-64 of a-z, 0-9, '.', '_', '-', starting alphanumeric",
        )
    return name


def validate_roles(roles: Sequence[str]) -> tuple[str, ...]:
    """Empty means member (as before projects); `none` alone means no role: only grants count."""
    if list(roles) == [NO_ROLE]:
        return ()
    for r in roles:
        if r not in ROLES:
            known = ", ".join((*ROLES, NO_ROLE))
            raise InvalidArgument.field("roles", f"unknown role {r!r}; known roles: {known}")
    return tuple(dict.fromkeys(roles)) or ("member",)


# ---------------------------------------------------------------- the view


class TokensView(Projection):
    """Inline view (same transaction as the append), so a token works the moment it is created."""

    name = "tokens"
    schema = LOG
    sources = (LOG,)
    tables = ("tokens",)
    handles = frozenset({"TokenIssued", "TokenRevoked"})

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.tokens} (
    name         text PRIMARY KEY,
    token_sha256 text NOT NULL UNIQUE,
    roles        text[] NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    position     bigint NOT NULL
);
"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        for ev in events:
            decoded = ev.decode(registry)
            if isinstance(decoded, TokenIssued):
                await conn.execute(
                    f"INSERT INTO {t.tokens} (name, token_sha256, roles, created_by, created_at, position) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    decoded.name,
                    decoded.token_sha256,
                    list(decoded.roles),
                    ev.metadata().actor,
                    ev.recorded_at,
                    ev.position,
                )
            elif isinstance(decoded, TokenRevoked):
                await conn.execute(
                    f"UPDATE {t.tokens} SET revoked_at = $2, position = $3 WHERE name = $1",
                    decoded.name,
                    ev.recorded_at,
                    ev.position,
                )


@dataclass(frozen=True)
class Principal:
    name: str
    roles: tuple[str, ...]


class TokenAuthority:
    """Issues tokens and resolves a bearer secret to its principal, with a short cache."""

    CACHE_TTL_S = 5.0

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def create(self, name: str, roles: Sequence[str], metadata: Metadata) -> tuple[str, Principal]:
        name = validate_name(name)
        role_set = validate_roles(roles)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        outcome = await handle(
            self.store,
            registry,
            token_decider,
            stream_id(name),
            CreateToken(name, hash_secret(secret), role_set),
            metadata,
        )
        if outcome.result.replayed:
            # A retried request: the secret was returned by the first attempt and only its hash is
            # kept, so it cannot be shown again.
            raise FailedPrecondition(
                f"token {name!r} was already created by an earlier attempt of this request; its secret "
                "was shown then. Revoke it and create another if it was lost."
            )
        return secret, Principal(name, role_set)

    async def revoke(self, name: str, metadata: Metadata) -> None:
        await handle(
            self.store, registry, token_decider, stream_id(validate_name(name)), RevokeToken(name), metadata
        )
        self._cache.clear()

    async def resolve(self, secret: str) -> Principal | None:
        digest = hash_secret(secret)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit and now - hit[0] < self.CACHE_TTL_S:
            return hit[1]
        row = await self.store.pool.fetchrow(
            "SELECT name, roles FROM identity.tokens WHERE token_sha256 = $1 AND revoked_at IS NULL", digest
        )
        principal = Principal(row[0], tuple(row[1])) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, principal)
        return principal

    async def list(self) -> list[asyncpg.Record]:
        return list(
            await self.store.pool.fetch(
                "SELECT name, roles, created_by, created_at, revoked_at FROM identity.tokens ORDER BY name"
            )
        )

    async def exists(self, name: str) -> bool:
        return bool(
            await self.store.pool.fetchval("SELECT count(*) FROM identity.tokens WHERE name = $1", name)
        )
