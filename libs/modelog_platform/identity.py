"""Bearer tokens as an event-sourced aggregate in the platform's `identity` log.

Only a SHA-256 of each secret is stored. The `identity.tokens` view is updated inline (in the append
transaction) so a token works the moment CreateToken returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import asyncpg
import grpc

from eventlog import (
    AlreadyExists,
    Decider,
    DomainEvent,
    EventRegistry,
    EventStore,
    FailedPrecondition,
    InvalidArgument,
    Metadata,
    ModelogError,
    NotFound,
    RecordedEvent,
    Unauthenticated,
)
from eventlog.commandpath import CommandPath
from eventlog.projection import Projection, Tables

log = logging.getLogger("modelog.identity")

LOG = "identity"
TOKEN_PREFIX = "mlg_"
ROLES = ("admin", "member", "viewer")
NO_ROLE = "none"
"""A token whose rights are only its grants (projects, experiments, models)."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")

registry = EventRegistry()


@registry.register
class TokenIssued(DomainEvent):
    """v2 added `roles`; v1 tokens predate roles and had full access (see the upcaster below).
    v3 added `expires_at`; None (every older token) never expires."""

    schema_version = 3
    name: str
    token_sha256: str
    roles: tuple[str, ...]
    expires_at: datetime | None = None


@registry.upcaster("TokenIssued", from_version=1)
def _token_issued_v1_to_v2(payload: dict[str, object]) -> dict[str, object]:
    return {**payload, "roles": ["admin"]}


@registry.upcaster("TokenIssued", from_version=2)
def _token_issued_v2_to_v3(payload: dict[str, object]) -> dict[str, object]:
    return {**payload, "expires_at": None}


@registry.register
class TokenRevoked(DomainEvent):
    name: str


@registry.register
class TokenRotated(DomainEvent):
    """The token's secret was replaced: same name, roles and grants; the old secret stops working.
    `expires_at` None keeps the expiry the token had."""

    name: str
    token_sha256: str
    expires_at: datetime | None = None


# ---------------------------------------------------------------- decider


@dataclass(frozen=True)
class CreateToken:
    name: str
    token_sha256: str
    roles: tuple[str, ...]
    expires_at: datetime | None = None
    now: datetime | None = None
    """When the command was made (the decider has no clock); needed only with `expires_at`."""


@dataclass(frozen=True)
class RevokeToken:
    name: str


@dataclass(frozen=True)
class RotateToken:
    name: str
    token_sha256: str
    now: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True)
class TokenState:
    exists: bool = False
    revoked: bool = False
    roles: tuple[str, ...] = ()
    expires_at: datetime | None = None


TokenCommand = CreateToken | RevokeToken | RotateToken


def _future(name: str, expires_at: datetime | None, now: datetime | None) -> None:
    if expires_at is not None and now is not None and expires_at <= now:
        raise InvalidArgument.field(
            "expires_at", f"token {name!r} would expire at {expires_at.isoformat()}, not in the future"
        )


def decide(cmd: TokenCommand, state: TokenState) -> Sequence[DomainEvent]:
    if isinstance(cmd, CreateToken):
        if state.exists:
            raise AlreadyExists(f"a token named {cmd.name!r} already exists; pick another name")
        _future(cmd.name, cmd.expires_at, cmd.now)
        return [
            TokenIssued(
                name=cmd.name, token_sha256=cmd.token_sha256, roles=cmd.roles, expires_at=cmd.expires_at
            )
        ]
    if not state.exists:
        raise NotFound(f"no token named {cmd.name!r}")
    if state.revoked:
        raise FailedPrecondition(f"token {cmd.name!r} is already revoked")
    if isinstance(cmd, RotateToken):
        _future(cmd.name, cmd.expires_at, cmd.now)
        if cmd.expires_at is None and state.expires_at is not None and state.expires_at <= cmd.now:
            raise FailedPrecondition(
                f"token {cmd.name!r} expired at {state.expires_at.isoformat()}; rotate it with a new "
                "expiry (--expires)"
            )
        return [TokenRotated(name=cmd.name, token_sha256=cmd.token_sha256, expires_at=cmd.expires_at)]
    return [TokenRevoked(name=cmd.name)]


def evolve(state: TokenState, event: DomainEvent) -> TokenState:
    if isinstance(event, TokenIssued):
        return TokenState(exists=True, roles=event.roles, expires_at=event.expires_at)
    if isinstance(event, TokenRotated):
        return replace(state, expires_at=event.expires_at or state.expires_at)
    if isinstance(event, TokenRevoked):
        return replace(state, revoked=True)
    return state


token_decider: Decider[TokenCommand, TokenState] = Decider(TokenState(), decide, evolve)


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

USAGE_DDL = f"""
CREATE TABLE IF NOT EXISTS {LOG}.token_usage (
    name         text PRIMARY KEY,
    last_used_at timestamptz NOT NULL
);
"""
"""When each token last authenticated: a side table, not part of the view (no event records a use,
so a rebuild neither needs nor touches it). Written at most once a minute per token per process."""


class TokensView(Projection):
    """Inline view (same transaction as the append), so a token works the moment it is created."""

    name = "tokens"
    schema = LOG
    sources = (LOG,)
    tables = ("tokens",)
    handles = frozenset({"TokenIssued", "TokenRevoked", "TokenRotated"})

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.tokens} (
    name         text PRIMARY KEY,
    token_sha256 text NOT NULL UNIQUE,
    roles        text[] NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    expires_at   timestamptz,
    position     bigint NOT NULL
);
{USAGE_DDL}"""

    def upgrade(self, t: Tables) -> str:
        return f"ALTER TABLE {t.tokens} ADD COLUMN IF NOT EXISTS expires_at timestamptz;\n{USAGE_DDL}"

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        for ev in events:
            decoded = ev.decode(registry)
            if isinstance(decoded, TokenIssued):
                await conn.execute(
                    f"INSERT INTO {t.tokens} (name, token_sha256, roles, created_by, created_at, "
                    "expires_at, position) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    decoded.name,
                    decoded.token_sha256,
                    list(decoded.roles),
                    ev.metadata().actor,
                    ev.recorded_at,
                    decoded.expires_at,
                    ev.position,
                )
            elif isinstance(decoded, TokenRotated):
                await conn.execute(
                    f"UPDATE {t.tokens} SET token_sha256 = $2, expires_at = COALESCE($3, expires_at), "
                    "position = $4 WHERE name = $1",
                    decoded.name,
                    decoded.token_sha256,
                    decoded.expires_at,
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
    expires_at: datetime | None = None


class TooManyFailures(ModelogError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "TOO_MANY_FAILED_AUTHENTICATIONS"


class FailureLimiter:
    """Failed authentications per peer host in a sliding window. Only failures are counted, so a
    client that authenticates is never slowed; a host over the limit is refused before any lookup."""

    def __init__(
        self, limit: int = 20, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, host: str, now: float) -> deque[float] | None:
        q = self._failures.get(host)
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if q is not None and not q:
            del self._failures[host]
            return None
        return q

    def check(self, host: str) -> None:
        """Raise TooManyFailures when `host` has `limit` failures within the window."""
        now = self.clock()
        q = self._recent(host, now)
        if q is not None and len(q) >= self.limit:
            wait = max(1, math.ceil(q[0] + self.window_s - now))
            raise TooManyFailures(f"too many failed authentications from {host}; try again in {wait} s")

    def failed(self, host: str) -> None:
        now = self.clock()
        if len(self._failures) > 10_000:  # bounded memory under a spray of hosts: forget the quiet ones
            for h in list(self._failures):
                self._recent(h, now)
        self._failures.setdefault(host, deque()).append(now)


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string: 'ipv4:1.2.3.4:5', 'ipv6:[::1]:5', 'unix:/path'."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1 : rest.find("]")] if "]" in rest else rest
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    return rest or peer


class TokenAuthority:
    """Issues tokens and resolves a bearer secret to its principal, with a short cache."""

    CACHE_TTL_S = 1.0
    """Bounds how long another process keeps honouring a revoked or rotated secret."""
    LAST_USED_EVERY_S = 60.0

    def __init__(self, store: EventStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.commands = CommandPath(store, events=registry)
        self.clock = clock
        self.failures = FailureLimiter()
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._used: dict[str, float] = {}
        self._writes: set[asyncio.Task[None]] = set()

    async def create(
        self,
        name: str,
        roles: Sequence[str],
        metadata: Metadata,
        expires_at: datetime | None = None,
    ) -> tuple[str, Principal]:
        name = validate_name(name)
        role_set = validate_roles(roles)
        secret = new_secret()
        outcome = await self.commands.execute(
            token_decider,
            stream_id(name),
            CreateToken(name, hash_secret(secret), role_set, expires_at, datetime.now(UTC)),
            metadata,
        )
        if outcome.replayed:
            # A retried request: the secret was returned by the first attempt and only its hash is
            # kept, so it cannot be shown again.
            raise FailedPrecondition(
                f"token {name!r} was already created by an earlier attempt of this request; its secret "
                "was shown then. Revoke it and create another if it was lost."
            )
        return secret, Principal(name, role_set, expires_at)

    async def rotate(
        self, name: str, metadata: Metadata, expires_at: datetime | None = None
    ) -> tuple[str, Principal]:
        """A new secret for `name`; the old one stops working at once here, within 1 s elsewhere."""
        name = validate_name(name)
        secret = new_secret()
        outcome = await self.commands.execute(
            token_decider,
            stream_id(name),
            RotateToken(name, hash_secret(secret), datetime.now(UTC), expires_at),
            metadata,
        )
        self._cache.clear()
        if outcome.replayed:
            raise FailedPrecondition(
                f"token {name!r} was already rotated by an earlier attempt of this request; its new "
                "secret was shown then. Rotate it again if it was lost."
            )
        return secret, Principal(name, outcome.state.roles, outcome.state.expires_at)

    async def revoke(self, name: str, metadata: Metadata) -> None:
        stream = stream_id(validate_name(name))
        await self.commands.execute(token_decider, stream, RevokeToken(name), metadata)
        self._cache.clear()

    async def resolve(self, secret: str) -> Principal | None:
        """The live (not revoked) token with this secret, expired or not; None if there is none.

        The lookup is by SHA-256 of the secret, never by the secret: how long the index search or a
        comparison of digests takes tells an attacker about the digest only, and a digest that
        matches a prefix says nothing usable about the secret (finding a secret with a chosen digest
        prefix is as hard as guessing). The digest found is still compared in constant time.
        """
        digest = hash_secret(secret)
        now = self.clock()
        hit = self._cache.get(digest)
        if hit and now - hit[0] < self.CACHE_TTL_S:
            return hit[1]
        row = await self.store.pool.fetchrow(
            "SELECT name, roles, expires_at, token_sha256 FROM identity.tokens "
            "WHERE token_sha256 = $1 AND revoked_at IS NULL",
            digest,
        )
        principal = (
            Principal(row[0], tuple(row[1]), row[2])
            if row and hmac.compare_digest(row[3].encode(), digest.encode())
            else None
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, principal)
        return principal

    async def authenticate(self, secret: str, host: str) -> Principal:
        """The principal of a bearer secret from `host`, or Unauthenticated (unknown, revoked or
        expired); a host with too many recent failures is refused before the lookup."""
        self.failures.check(host)
        principal = await self.resolve(secret)
        if principal is None:
            self.failures.failed(host)
            raise Unauthenticated("unknown or revoked token")
        if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
            self.failures.failed(host)
            raise Unauthenticated(
                f"token {principal.name} expired at {principal.expires_at.isoformat()}; "
                "ask an admin to rotate it (`modelog token rotate NAME --expires ...`)"
            )
        self._touch(principal.name)
        return principal

    def _touch(self, name: str) -> None:
        """Record the use off the request path, at most once a minute per token."""
        now = self.clock()
        if now - self._used.get(name, -math.inf) < self.LAST_USED_EVERY_S:
            return
        self._used[name] = now
        task = asyncio.get_running_loop().create_task(self._write_used(name, datetime.now(UTC)))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_used(self, name: str, when: datetime) -> None:
        try:
            await self.store.pool.execute(
                f"INSERT INTO {LOG}.token_usage (name, last_used_at) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET last_used_at = GREATEST(token_usage.last_used_at, $2)",
                name,
                when,
            )
        except Exception:  # a lost last-used time must never fail or slow a request
            log.debug("could not record the last use of token %r", name, exc_info=True)

    async def list(self) -> list[asyncpg.Record]:
        return list(
            await self.store.pool.fetch(
                "SELECT t.name, t.roles, t.created_by, t.created_at, t.revoked_at, t.expires_at, "
                f"u.last_used_at FROM identity.tokens t LEFT JOIN {LOG}.token_usage u USING (name) "
                "ORDER BY t.name"
            )
        )

    async def exists(self, name: str) -> bool:
        return bool(
            await self.store.pool.fetchval("SELECT count(*) FROM identity.tokens WHERE name = $1", name)
        )


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)
