"""Token rules as given / when / then, and the TokenIssued upcaster."""

from __future__ import annotations

import pytest

from eventlog import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from modelog_platform.identity import (
    CreateToken,
    RevokeToken,
    TokenIssued,
    TokenRevoked,
    registry,
    token_decider,
    validate_name,
    validate_roles,
)


def test_a_new_token_is_issued() -> None:
    when = CreateToken("ci", "h", ("member",))
    assert token_decider.decide(when, token_decider.fold([])) == [
        TokenIssued(name="ci", token_sha256="h", roles=("member",))
    ]


def test_a_name_cannot_be_issued_twice() -> None:
    given = [TokenIssued(name="ci", token_sha256="h", roles=("member",))]
    with pytest.raises(AlreadyExists, match="already exists"):
        token_decider.decide(CreateToken("ci", "h2", ("member",)), token_decider.fold(given))


def test_revoking_twice_or_unknown_is_refused() -> None:
    given = [TokenIssued(name="ci", token_sha256="h", roles=()), TokenRevoked(name="ci")]
    with pytest.raises(FailedPrecondition):
        token_decider.decide(RevokeToken("ci"), token_decider.fold(given))
    with pytest.raises(NotFound):
        token_decider.decide(RevokeToken("ci"), token_decider.fold([]))


def test_v1_token_issued_upcasts_to_admin_roles() -> None:
    event = registry.decode("TokenIssued", 1, {"name": "old", "token_sha256": "x"})
    assert event == TokenIssued(name="old", token_sha256="x", roles=("admin",))


@pytest.mark.parametrize("bad", ["", "UPPER", "-dash", "x" * 65, "sp ace", "new\nline"])
def test_bad_token_names_are_invalid(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_name(bad)


def test_roles_default_to_member_and_unknown_roles_are_invalid() -> None:
    assert validate_roles([]) == ("member",)
    with pytest.raises(InvalidArgument, match="unknown role"):
        validate_roles(["root"])
