"""Token expiry and rotation as given / when / then, the v2 -> v3 upcaster, and the failure limiter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eventlog import FailedPrecondition, InvalidArgument, NotFound
from modelog_platform.identity import (
    CreateToken,
    FailureLimiter,
    RotateToken,
    TokenIssued,
    TokenRevoked,
    TokenRotated,
    TooManyFailures,
    peer_host,
    registry,
    token_decider,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_token_is_issued_with_its_expiry() -> None:
    when = CreateToken("ci", "h", ("member",), NOW + timedelta(days=30), NOW)
    assert token_decider.decide(when, token_decider.fold([])) == [
        TokenIssued(name="ci", token_sha256="h", roles=("member",), expires_at=NOW + timedelta(days=30))
    ]


def test_an_expiry_in_the_past_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="not in the future"):
        token_decider.decide(
            CreateToken("ci", "h", (), NOW - timedelta(seconds=1), NOW), token_decider.fold([])
        )


def test_v2_token_issued_upcasts_to_never_expiring() -> None:
    event = registry.decode("TokenIssued", 2, {"name": "old", "token_sha256": "x", "roles": ["viewer"]})
    assert event == TokenIssued(name="old", token_sha256="x", roles=("viewer",), expires_at=None)


def test_rotation_replaces_the_secret_and_keeps_roles_and_expiry() -> None:
    given = [TokenIssued(name="ci", token_sha256="h", roles=("viewer",), expires_at=NOW + timedelta(days=1))]
    when = RotateToken("ci", "h2", NOW)
    assert token_decider.decide(when, token_decider.fold(given)) == [
        TokenRotated(name="ci", token_sha256="h2", expires_at=None)
    ]
    state = token_decider.fold([*given, TokenRotated(name="ci", token_sha256="h2")])
    assert state.roles == ("viewer",) and state.expires_at == NOW + timedelta(days=1)
    later = NOW + timedelta(days=9)
    state = token_decider.fold([*given, TokenRotated(name="ci", token_sha256="h3", expires_at=later)])
    assert state.expires_at == later


def test_rotating_an_expired_token_needs_a_new_expiry() -> None:
    given = [TokenIssued(name="ci", token_sha256="h", roles=(), expires_at=NOW - timedelta(days=1))]
    with pytest.raises(FailedPrecondition, match="expired at"):
        token_decider.decide(RotateToken("ci", "h2", NOW), token_decider.fold(given))
    renewed = RotateToken("ci", "h2", NOW, NOW + timedelta(days=1))
    assert token_decider.decide(renewed, token_decider.fold(given))[0] == TokenRotated(
        name="ci", token_sha256="h2", expires_at=NOW + timedelta(days=1)
    )


def test_rotating_a_revoked_or_unknown_token_is_refused() -> None:
    given = [TokenIssued(name="ci", token_sha256="h", roles=()), TokenRevoked(name="ci")]
    with pytest.raises(FailedPrecondition, match="revoked"):
        token_decider.decide(RotateToken("ci", "h2", NOW), token_decider.fold(given))
    with pytest.raises(NotFound):
        token_decider.decide(RotateToken("ci", "h2", NOW), token_decider.fold([]))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_refuses_a_host_after_twenty_failures_within_a_minute() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock=clock)
    for _ in range(20):
        limiter.check("10.0.0.1")
        limiter.failed("10.0.0.1")
        clock.now += 1
    with pytest.raises(TooManyFailures, match=r"from 10\.0\.0\.1; try again in 40 s"):
        limiter.check("10.0.0.1")
    limiter.check("10.0.0.2")  # another host is not affected
    clock.now += 40  # the first failure leaves the window
    limiter.check("10.0.0.1")


def test_failures_spread_beyond_the_window_never_block() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock=clock)
    for _ in range(100):
        limiter.check("h")
        limiter.failed("h")
        clock.now += 3.1  # 19 failures per 60 s at most


@pytest.mark.parametrize(
    ("peer", "host"),
    [("ipv4:127.0.0.1:5555", "127.0.0.1"), ("ipv6:[::1]:5555", "::1"), ("unix:/tmp/s", "/tmp/s")],
)
def test_the_peer_host_drops_the_port(peer: str, host: str) -> None:
    assert peer_host(peer) == host
