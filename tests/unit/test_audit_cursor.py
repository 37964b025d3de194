"""Cursors round-trip exactly and damaged ones are refused with INVALID_ARGUMENT."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventlog import InvalidArgument
from modelog.shared.audit.cursor import decode_cursor, encode_cursor

logs = st.sampled_from(["tracking", "registry", "artifacts", "monitoring", "audit", "identity"])


@given(st.dictionaries(logs, st.integers(0, 2**62)))
def test_a_cursor_round_trips(positions: dict[str, int]) -> None:
    assert decode_cursor(encode_cursor(positions)) == positions


@pytest.mark.parametrize("bad", ["", "now", "c1.!!!", "c1.dHJhY2tpbmc9eA", "x1.abc", "c1.dHJhY2tpbmc9LTE"])
def test_a_damaged_cursor_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        decode_cursor(bad)
