"""Writing a compliance bundle (its format: modelog.shared.audit.bundle)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from eventlog.records import RecordedEvent
from modelog.shared.audit.bundle import (
    FORMAT,
    VERSION,
    LogSection,
    Summary,
    encode,
    rows_to_lines,
    signing_message,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BundleWriter:
    """Turns events into bundle lines (bytes); call in order: header, log sections, finish."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.sections: dict[str, LogSection] = {}
        self.summary = Summary()
        self._section: LogSection | None = None

    def _line(self, text: str) -> bytes:
        data = (text + "\n").encode()
        self._sha.update(data)
        return data

    def header(self, logs: list[str], created_at: str, scope: dict[str, Any]) -> bytes:
        return self._line(
            encode(
                {"format": FORMAT, "version": VERSION, "created_at": created_at, "scope": scope, "logs": logs}
            )
        )

    def begin_log(self, log: str, first: int, anchor: bytes) -> bytes:
        self._section = self.sections[log] = LogSection(log, first, anchor)
        return self._line(encode({"kind": "log", "log": log, "first": first, "anchor": anchor.hex()}))

    def events(self, events: list[RecordedEvent], disclose: Callable[[RecordedEvent], bool] | None) -> bytes:
        section = self._section
        assert section is not None
        rows: list[list[Any]] = []
        add = self.summary.add
        for ev in events:
            if disclose is None or disclose(ev):
                at = ev.recorded_at - _EPOCH
                at_us = (at.days * 86_400 + at.seconds) * 1_000_000 + at.microseconds
                rows.append(
                    [
                        "e",
                        ev.position,
                        ev.stream_id,
                        ev.stream_version,
                        ev.event_id,
                        ev.type,
                        ev.schema_version,
                        at_us,
                        ev.payload_json,
                        ev.metadata_json,
                        ev.prev_hash.hex(),
                        ev.hash.hex(),
                    ]
                )
                add(ev.log, ev.position, ev.stream_id, ev.type, at_us, ev.payload_json, ev.metadata_json)
                section.disclosed += 1
            else:
                rows.append(["x", ev.position, ev.prev_hash.hex(), ev.hash.hex()])
        if not rows:
            return b""
        section.last = events[-1].position
        section.count += len(events)
        section.head = events[-1].hash
        data = rows_to_lines(rows).encode()
        self._sha.update(data)
        return data

    def finish(self, sign: Callable[[bytes], bytes], public_key: bytes, key_id: str) -> bytes:
        manifest = {"kind": "manifest", "logs": {n: s.as_dict() for n, s in self.sections.items()}}
        tail = self._line(encode(manifest)) + self._line(encode(self.summary.as_dict()))
        signature = sign(signing_message(self._sha.digest()))
        return (
            tail
            + (
                encode(
                    {
                        "kind": "signature",
                        "alg": "ed25519",
                        "key_id": key_id,
                        "public_key": public_key.hex(),
                        "signature": signature.hex(),
                    }
                )
                + "\n"
            ).encode()
        )


__all__ = ["BundleWriter"]
