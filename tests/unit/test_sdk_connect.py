"""`modelog.connect(url, token)` is where every part of the SDK connects, not only tracking."""

from __future__ import annotations

import pytest

import modelog
from modelog import _client


def test_every_connection_made_after_connect_goes_where_connect_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOG_URL", "127.0.0.1:1")
    monkeypatch.setenv("MODELOG_TOKEN", "from-env")
    monkeypatch.setattr(_client, "_connected", (None, None))
    client = modelog.connect("127.0.0.1:2", "from-connect")
    try:
        conn = _client.Connection()  # what audit, graph, artifacts and webhooks open by default
        assert (conn.url, conn.token) == ("127.0.0.1:2", "from-connect")
        conn.close()
        explicit = _client.Connection("127.0.0.1:3", "given")
        assert (explicit.url, explicit.token) == ("127.0.0.1:3", "given")
        explicit.close()
    finally:
        client.close()
        monkeypatch.setattr(_client, "_connected", (None, None))
    conn = _client.Connection()
    assert (conn.url, conn.token) == ("127.0.0.1:1", "from-env")
    conn.close()
