"""Whom failed authentications count against: the HTTP gateway on this host names its client; nobody
else can choose a throttling bucket."""

from __future__ import annotations

from modelog_platform.interceptor import client_host


def test_the_gateway_on_loopback_names_the_client_it_carries() -> None:
    assert client_host({"x-forwarded-for": "10.1.2.3"}, "ipv4:127.0.0.1:5555") == "10.1.2.3"
    assert client_host({"x-forwarded-for": "2001:db8::1, 10.0.0.1"}, "ipv6:[::1]:5555") == "2001:db8::1"


def test_a_remote_caller_cannot_pick_its_bucket_and_garbage_is_ignored() -> None:
    assert client_host({"x-forwarded-for": "10.1.2.3"}, "ipv4:203.0.113.9:5555") == "203.0.113.9"
    assert client_host({"x-forwarded-for": "not-an-ip"}, "ipv4:127.0.0.1:1") == "127.0.0.1"
    assert client_host({}, "ipv4:198.51.100.7:1") == "198.51.100.7"
    assert client_host({"x-forwarded-for": "10.1.2.3"}, "unix:/tmp/sock") == "/tmp/sock"


def test_request_ids_with_a_trailing_newline_are_refused() -> None:
    """`$` matches before a final newline; the id patterns use `\\Z` (gRPC cannot carry one today,
    an HTTP translator or another transport might)."""
    import pytest

    from eventlog.errors import InvalidArgument
    from modelog_platform.interceptor import _checked_id

    assert _checked_id({"x-request-id": "abc"}, "x-request-id") == "abc"
    with pytest.raises(InvalidArgument):
        _checked_id({"x-request-id": "abc\n"}, "x-request-id")
