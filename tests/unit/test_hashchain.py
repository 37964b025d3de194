"""The hash chain as pure code: any change to any field of any event is caught at that position."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from modelog.shared.hashchain import GENESIS, ChainRow, ChainVerifier, canonical_bytes, link


def build(n: int) -> list[ChainRow]:
    rows, prev = [], GENESIS
    for p in range(1, n + 1):
        fields = (
            "t",
            p,
            f"s{p % 3}",
            p,
            f"id-{p}",
            "Thing",
            1,
            1_700_000_000_000_000 + p,
            f'{{"i":{p}}}',
            '{"actor":"a"}',
        )
        digest = link(prev, canonical_bytes(*fields))
        rows.append(ChainRow(*fields, prev_hash=prev, hash=digest))
        prev = digest
    return rows


def verify(rows: list[ChainRow]) -> ChainVerifier:
    v = ChainVerifier()
    v.feed(rows)
    return v


def test_an_untouched_chain_verifies() -> None:
    v = verify(build(50))
    assert v.report.ok and v.report.events_checked == 50


MUTABLE = [
    "stream_id",
    "stream_version",
    "event_id",
    "event_type",
    "schema_version",
    "recorded_at_us",
    "payload_json",
    "metadata_json",
]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 30), data=st.data())
def test_changing_any_field_names_that_position(n: int, data: st.DataObject) -> None:
    rows = build(n)
    i = data.draw(st.integers(0, n - 1))
    name = data.draw(st.sampled_from(MUTABLE))
    old = getattr(rows[i], name)
    new = old + 1 if isinstance(old, int) else old + "x"
    rows[i] = dataclasses.replace(rows[i], **{name: new})
    v = verify(rows)
    assert not v.report.ok
    assert v.report.first_bad_position == i + 1


@settings(max_examples=100, deadline=None)
@given(n=st.integers(3, 30), data=st.data())
def test_removing_or_reordering_names_the_position(n: int, data: st.DataObject) -> None:
    rows = build(n)
    i = data.draw(st.integers(0, n - 2))
    if data.draw(st.booleans()):
        del rows[i]
    else:
        rows[i], rows[i + 1] = rows[i + 1], rows[i]
    v = verify(rows)
    assert not v.report.ok and v.report.first_bad_position == i + 1


def test_canonical_bytes_cannot_be_confused_by_newlines_in_stream_ids() -> None:
    a = canonical_bytes("t", 1, "a\nb", 1, "e", "T", 1, 0, "{}", "{}")
    b = canonical_bytes("t", 1, "a", 1, "b\ne", "T", 1, 0, "{}", "{}")
    assert a != b
