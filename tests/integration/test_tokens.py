"""Tokens in-process: revocation honoured by every process within a second, expiry, rotation,
constant-time comparison, failed-authentication throttling and last-used times."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import Metadata
from modelog._gen.identity.v1 import identity_pb2
from modelog.cli import main
from modelog_platform import identity
from modelog_platform.identity import TokenAuthority, hash_secret
from tests.integration.test_platform_api import Stack, stack
from tests.integration.test_registry_sdk import Server, server
from tests.waiting import wait_until_async

__all__ = ["server", "stack"]


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


async def _who(s: Stack, secret: str) -> identity_pb2.WhoAmIResponse:
    return await s.identity.WhoAmI(identity_pb2.WhoAmIRequest(), metadata=s.auth(secret))


async def _refused(s: Stack, secret: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _who(s, secret)
    return info.value


async def test_a_token_revoked_through_one_process_is_refused_by_another(stack: Stack) -> None:
    one = stack.platform.authority
    assert one is not None
    other = TokenAuthority(stack.platform.stores[identity.LOG])  # a second serving process
    secret, _ = await one.create("ci", ["member"], Metadata(actor="admin"))
    assert await other.resolve(secret) is not None  # now in the other's cache
    await one.revoke("ci", Metadata(actor="admin"))

    async def refused_there() -> bool:
        return await other.resolve(secret) is None

    await wait_until_async(refused_there, 10, "the other process to refuse the revoked token")


async def test_an_expired_token_is_unauthenticated_naming_the_token_and_the_instant(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.identity.CreateToken(
            identity_pb2.CreateTokenRequest(name="past", expires_at=_ts(datetime.now(UTC) - timedelta(1))),
            metadata=stack.auth(),
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    made = await stack.identity.CreateToken(
        identity_pb2.CreateTokenRequest(name="brief", expires_at=_ts(soon)), metadata=stack.auth()
    )
    assert made.token.expires_at.ToDatetime(tzinfo=UTC) == soon
    assert (await _who(stack, made.secret)).actor == "brief"
    listed = await stack.identity.ListTokens(identity_pb2.ListTokensRequest(), metadata=stack.auth())
    by_name = {t.name: t for t in listed.tokens}
    assert by_name["brief"].expires_at.ToDatetime(tzinfo=UTC) == soon
    assert not by_name["admin"].HasField("expires_at")  # never expires

    async def expired() -> grpc.aio.AioRpcError | None:
        try:
            await _who(stack, made.secret)
        except grpc.aio.AioRpcError as exc:
            return exc
        return None

    exc = await wait_until_async(expired, 10, "the token to expire")
    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
    assert f"token brief expired at {soon.isoformat()}" in (exc.details() or "")


async def test_rotation_keeps_name_and_roles_and_the_old_secret_stops_at_once(stack: Stack) -> None:
    made = await stack.identity.CreateToken(
        identity_pb2.CreateTokenRequest(name="bot", roles=["viewer"]), metadata=stack.auth()
    )
    assert (await _who(stack, made.secret)).roles == ["viewer"]  # cached now
    rotated = await stack.identity.RotateToken(
        identity_pb2.RotateTokenRequest(name="bot"), metadata=stack.auth()
    )
    assert rotated.secret != made.secret and rotated.token.roles == ["viewer"]
    assert (await _refused(stack, made.secret)).code() == grpc.StatusCode.UNAUTHENTICATED
    who = await _who(stack, rotated.secret)
    assert (who.actor, list(who.roles)) == ("bot", ["viewer"])
    row = await stack.platform.pool.fetchrow(
        "SELECT payload FROM identity.events WHERE type = 'TokenRotated' ORDER BY position DESC LIMIT 1"
    )
    assert hash_secret(rotated.secret) in row["payload"] and rotated.secret not in row["payload"]

    # A viewer may rotate its own token, named as a confirmation, but no other.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.identity.RotateToken(
            identity_pb2.RotateTokenRequest(name="bot"), metadata=stack.auth(rotated.secret)
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.identity.RotateOwnToken(
            identity_pb2.RotateOwnTokenRequest(name="admin"), metadata=stack.auth(rotated.secret)
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    later = datetime.now(UTC) + timedelta(days=7)
    own = await stack.identity.RotateOwnToken(
        identity_pb2.RotateOwnTokenRequest(name="bot", expires_at=_ts(later)),
        metadata=stack.auth(rotated.secret),
    )
    assert own.token.expires_at.ToDatetime(tzinfo=UTC) == later
    assert (await _refused(stack, rotated.secret)).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await _who(stack, own.secret)).actor == "bot"


async def test_the_stored_digest_is_compared_in_constant_time(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append(b)
        return real(a, b)

    monkeypatch.setattr(identity.hmac, "compare_digest", spy)
    assert await TokenAuthority(stack.platform.stores[identity.LOG]).resolve(stack.admin) is not None
    assert seen == [hash_secret(stack.admin).encode()]


async def test_a_peer_with_many_failed_authentications_is_throttled(stack: Stack) -> None:
    for _ in range(30):  # successes are never counted
        await _who(stack, stack.admin)
    codes = [(await _refused(stack, f"mlg_bad{i}")).code() for i in range(20)]
    assert set(codes) == {grpc.StatusCode.UNAUTHENTICATED}
    for i in range(5):
        exc = await _refused(stack, f"mlg_more{i}")
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many failed authentications from 127.0.0.1; try again in" in (exc.details() or "")
    # Refused before any lookup: even a good token from that host waits out the window.
    assert (await _refused(stack, stack.admin)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_token_list_shows_when_each_token_was_last_used(stack: Stack) -> None:
    made = await stack.identity.CreateToken(
        identity_pb2.CreateTokenRequest(name="used"), metadata=stack.auth()
    )
    before = datetime.now(UTC)
    await _who(stack, made.secret)

    async def last_used() -> identity_pb2.TokenInfo | None:
        listed = await stack.identity.ListTokens(identity_pb2.ListTokensRequest(), metadata=stack.auth())
        token = next(t for t in listed.tokens if t.name == "used")
        return token if token.HasField("last_used_at") else None

    token = await wait_until_async(last_used, 10, "the token's last use to be recorded")
    assert token.last_used_at.ToDatetime(tzinfo=UTC) >= before - timedelta(seconds=1)


def _cli(server: Server, token: str, *args: str) -> str:
    env = {"MODELOG_URL": server.addr, "MODELOG_TOKEN": token, "MODELOG_HOME": str(server.home)}
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_token_create_with_expiry_list_and_rotate_from_the_command_line(server: Server) -> None:
    admin = server.tokens["admin"]
    made = json.loads(_cli(server, admin, "token", "create", "cli-bot", "--expires", "30d", "--json"))
    expires = datetime.fromisoformat(made["expires_at"])
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)
    listed = {t["name"]: t for t in json.loads(_cli(server, admin, "token", "list", "--json"))}
    assert listed["cli-bot"]["expires_at"] == made["expires_at"]
    assert listed["admin"]["expires_at"] is None
    assert "expires never" in _cli(server, admin, "token", "list")

    rotated = json.loads(_cli(server, admin, "token", "rotate", "cli-bot", "--json"))
    assert rotated["secret"] != made["secret"] and rotated["expires_at"] == made["expires_at"]
    own = _cli(server, rotated["secret"], "token", "rotate", "--expires", "2030-01-01T00:00:00Z")
    secret = own.splitlines()[0]
    assert secret.startswith("mlg_") and "expires 2030-01-01T00:00:00+00:00" in own
    env = {"MODELOG_URL": server.addr, "MODELOG_TOKEN": rotated["secret"]}
    stale = CliRunner().invoke(main, ["token", "list"], env=env)
    assert stale.exit_code != 0 and "unknown or revoked token" in stale.output
    bad = CliRunner().invoke(
        main, ["token", "create", "x", "--expires", "soon"], env={"MODELOG_URL": server.addr}
    )
    assert bad.exit_code != 0 and "neither a duration" in bad.output
