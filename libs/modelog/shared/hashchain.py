"""The tamper-evidence chain: hash = SHA-256(previous hash || canonical bytes of the event).

Pure functions over plain values so the same code verifies a live log, a gRPC stream and an offline
export bundle (the SDK's verifier included), with the one JSON spelling the chain covers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = bytes(32)
"""The `previous hash` of position 1."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def canonical_json(value: Any) -> str:
    """The one JSON spelling the hash chain covers: sorted keys, no spaces, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def micros(ts: datetime) -> int:
    """Exact integer microseconds since the epoch (no float rounding)."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def canonical_bytes(
    log: str,
    position: int,
    stream_id: str,
    stream_version: int,
    event_id: str,
    event_type: str,
    schema_version: int,
    recorded_at_us: int,
    payload_json: str,
    metadata_json: str,
) -> bytes:
    """Newline-separated fields; only the last two are free text and compact JSON has no raw newline."""
    return "\n".join(
        (
            log,
            str(position),
            json.dumps(stream_id),
            str(stream_version),
            event_id,
            event_type,
            str(schema_version),
            str(recorded_at_us),
            payload_json,
            metadata_json,
        )
    ).encode()


def link(prev_hash: bytes, canonical: bytes) -> bytes:
    return hashlib.sha256(prev_hash + canonical).digest()


@dataclass(frozen=True, slots=True)
class ChainRow:
    """What verification needs of one stored event."""

    log: str
    position: int
    stream_id: str
    stream_version: int
    event_id: str
    event_type: str
    schema_version: int
    recorded_at_us: int
    payload_json: str
    metadata_json: str
    prev_hash: bytes
    hash: bytes

    def recompute(self, prev_hash: bytes) -> bytes:
        return link(
            prev_hash,
            canonical_bytes(
                self.log,
                self.position,
                self.stream_id,
                self.stream_version,
                self.event_id,
                self.event_type,
                self.schema_version,
                self.recorded_at_us,
                self.payload_json,
                self.metadata_json,
            ),
        )


@dataclass
class VerifyReport:
    ok: bool = True
    events_checked: int = 0
    first_bad_position: int = 0
    reason: str = ""
    head_hash: bytes = GENESIS


class ChainVerifier:
    """Feeds rows in order; stops at the first break and says where and why."""

    def __init__(self, start_position: int = 1, anchor: bytes = GENESIS) -> None:
        self.expected_position = start_position
        self.report = VerifyReport(head_hash=anchor)

    def feed(self, rows: Iterable[ChainRow]) -> bool:
        """Returns False once a break is found (further rows are ignored)."""
        report = self.report
        if not report.ok:
            return False
        prev = report.head_hash
        expected = self.expected_position
        checked = report.events_checked
        for row in rows:
            if row.position != expected:
                return self._fail(
                    expected,
                    checked,
                    prev,
                    f"position {expected} is missing (next stored position is {row.position})"
                    if row.position > expected
                    else f"position {row.position} appears out of order after {expected - 1}",
                )
            if row.prev_hash != prev:
                return self._fail(
                    expected,
                    checked,
                    prev,
                    f"position {expected} does not link to the hash of position {expected - 1}",
                )
            actual = row.recompute(prev)
            if actual != row.hash:
                return self._fail(
                    expected, checked, prev, f"position {expected}: stored hash does not match its content"
                )
            prev = actual
            expected += 1
            checked += 1
        report.head_hash = prev
        report.events_checked = checked
        self.expected_position = expected
        return True

    def _fail(self, position: int, checked: int, prev: bytes, reason: str) -> bool:
        self.report = VerifyReport(False, checked, position, reason, prev)
        return False
