"""Events larger than one Kafka message: split by the relay, reassembled by consumers, never lost silently."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog.cloudevents import (
    Assembler,
    NotAModelogEvent,
    OversizedEvent,
    from_message,
    omitted_message,
    to_messages,
)
from eventlog.records import RecordedEvent


def event(payload_bytes: int, position: int = 7, metadata: str = '{"actor":"alice"}') -> RecordedEvent:
    payload = json.dumps({"blob": "é" * (payload_bytes // 2)}, ensure_ascii=False)  # 2 bytes a char
    ev = RecordedEvent(
        "tracking", position, "run-1", 3, f"id-{position}", "MetricsLogged", 1, payload, metadata,
        datetime(2026, 12, 7, tzinfo=UTC), b"\x01" * 32, b"",
    )  # fmt: skip
    return dataclasses.replace(ev, hash=ev.chain_row().recompute(ev.prev_hash))


def feed(assembler: Assembler, messages: list[tuple[bytes, list[tuple[str, bytes]]]]) -> list[RecordedEvent]:
    return [ev for value, headers in messages if (ev := assembler.offer(value, headers)) is not None]


def test_an_event_that_fits_is_one_message_without_chunk_headers() -> None:
    ev = event(10_000)
    [msg] = to_messages(ev, None, 1_000_000)
    assert not any(k.startswith("ce_chunk") for k, _ in msg.headers)
    assert from_message(msg.value, msg.headers) == ev


def test_a_large_event_is_split_into_messages_the_producer_accepts_and_reassembled_exactly() -> None:
    ev = event(3_500_000)
    messages = to_messages(ev, "00-" + "a" * 32 + "-" + "b" * 16 + "-01", 1_000_000)
    assert len(messages) == 4
    for m in messages:
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(ev.stream_id.encode(), m.value, m.headers)
        assert size <= 1_000_000  # what aiokafka checks against max_request_size
    got = feed(Assembler(), [(m.value, m.headers) for m in messages])
    assert got == [ev]


def test_repeated_chunks_of_a_redelivery_still_give_the_event_once() -> None:
    ev = event(2_500_000)
    messages = [(m.value, m.headers) for m in to_messages(ev, None, 1_000_000)]
    got = feed(Assembler(), [messages[0], messages[1], messages[0], messages[1], messages[2], messages[2]])
    assert got == [ev]


def test_chunks_of_two_events_interleaved_across_partitions_both_reassemble() -> None:
    a, b = event(2_000_000, position=1), event(2_000_000, position=2)
    ma = [(m.value, m.headers) for m in to_messages(a, None, 1_000_000)]
    mb = [(m.value, m.headers) for m in to_messages(b, None, 1_000_000)]
    mixed = [x for pair in zip(ma, mb, strict=True) for x in pair]
    assert feed(Assembler(), mixed) == [a, b]


def test_a_chunk_from_another_event_is_refused_not_applied() -> None:
    ev = event(2_000_000)
    messages = [(m.value, m.headers) for m in to_messages(ev, None, 1_000_000)]
    value, headers = messages[-1]
    messages[-1] = (value[:-1] + b"!", headers)
    with pytest.raises(NotAModelogEvent, match="do not match its hash"):
        feed(Assembler(), messages)


def test_an_unfinished_event_is_forgotten_once_too_many_are_pending() -> None:
    assembler = Assembler(max_partial=2)
    firsts = []
    for position in (1, 2, 3):
        m = to_messages(event(2_000_000, position=position), None, 1_000_000)
        firsts.append(m)
        assert assembler.offer(m[0].value, m[0].headers) is None
    # The oldest partial (position 1) was dropped: its later chunks never complete it.
    assert feed(assembler, [(m.value, m.headers) for m in firsts[0][1:]]) == []
    assert [e.position for e in feed(assembler, [(m.value, m.headers) for m in firsts[2][1:]])] == [3]


def test_a_stand_in_for_a_refused_event_yields_nothing_and_is_counted() -> None:
    msg = omitted_message(event(10), "MessageSizeTooLargeError: too big")
    assembler = Assembler()
    assert msg.value == b"" and dict(msg.headers)["ce_position"] == b"7"
    assert assembler.offer(msg.value, msg.headers) is None and assembler.omitted == 1


def test_an_event_whose_headers_alone_exceed_the_message_size_is_oversized() -> None:
    with pytest.raises(OversizedEvent, match="position 7"):
        to_messages(event(100_000, metadata=json.dumps({"note": "x" * 40_000})), None, 32_000)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 300_000), limit=st.integers(20_000, 200_000), seed=st.integers(0, 1000))
def test_any_split_reassembles_to_the_same_event_in_any_order_of_chunks(
    size: int, limit: int, seed: int
) -> None:
    ev = event(size)
    messages = [(m.value, m.headers) for m in to_messages(ev, None, limit)]
    random.Random(seed).shuffle(messages)
    assert feed(Assembler(), messages) == [ev]
