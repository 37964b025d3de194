"""A recorded event's payload reads the same whichever JSON parser reads it."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from eventlog import RecordedEvent


def _event(payload_json: str) -> RecordedEvent:
    return RecordedEvent(
        "tracking", 1, "run-r", 1, "0" * 32, "Thing", 1, payload_json, "{}",
        datetime(2026, 1, 1, tzinfo=UTC), b"", b"",
    )  # fmt: skip


def test_canonical_payloads_read_as_python_json_reads_them() -> None:
    payload = {"keys": ["a", "é"], "values": [0.1, 1e16, -0.0, 2.5e-300], "steps": [0, 2**62], "n": None}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert _event(text).payload() == json.loads(text)


def test_what_orjson_refuses_is_still_read() -> None:
    # Not canonical JSON, but a payload written by hand or by an old release may hold them.
    got = _event('{"v":NaN,"big":123456789012345678901234567890}').payload()
    assert math.isnan(got["v"]) and got["big"] == 123456789012345678901234567890
