"""The compliance bundle: one JSON-lines file, signed, that verifies with no server and no database.

    {"format": "modelog-audit-bundle", "version": 1, ...}                 header
    {"kind": "log", "log": L, "first": P, "anchor": HEX}                   one section per log
    ["e", position, stream_id, version, event_id, type, schema_version,    a disclosed event: exactly
     recorded_at_us, payload_json, metadata_json, prev_hash, hash]         the hash chain's inputs
    ["x", position, prev_hash, hash]                                       a hash-only row (--model)
    {"kind": "manifest", "logs": {L: {first, last, count, ...}}}
    {"kind": "summary", ...}                                               actors, types, approvals
    {"kind": "signature", "alg": "ed25519", ...}                           over every byte above

`anchor` is the hash of the event just before the range (32 zero bytes at position 1), so a range
verifies on its own. Everything is written once, by a deterministic encoder, which lets the verifier
re-encode a line to find the exact place of a change the chain alone cannot see.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from eventlog.hashchain import GENESIS
from eventlog.records import RecordedEvent

FORMAT = "modelog-audit-bundle"
VERSION = 1
SIGNING_CONTEXT = b"modelog-audit-bundle-v1\n"
"""Prefixed to the SHA-256 of the signed bytes, so the key signs nothing but bundles."""

APPROVAL_TYPES = frozenset(
    {
        "TransitionRequested",
        "TransitionApproved",
        "TransitionRejected",
        "TransitionCancelled",
        "VersionStageChanged",
    }
)
PRODUCTION = "Production"

encode: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""The one encoder of every line (deterministic, compact)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rows_to_lines(rows: list[list[Any]]) -> str:
    """One encoder call for a whole batch, split into lines: exactly `encode(row) + "\\n"` per row.

    Every row begins `["e",` or `["x",`. Inside a string a quote is escaped, and after a string's
    closing quote comes `,` or `]`, never a letter: so `],["e",` / `],["x",` mark row boundaries only."""
    text = encode(rows)[1:-1]
    return text.replace('],["e",', ']\n["e",').replace('],["x",', ']\n["x",') + "\n"


def iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def signing_message(digest: bytes) -> bytes:
    return SIGNING_CONTEXT + digest


class Summary:
    """Who did what: every actor, counts per event type, every approval and Production change."""

    def __init__(self) -> None:
        self.actors: Counter[str] = Counter()
        self.types: Counter[str] = Counter()
        self.approvals: list[dict[str, Any]] = []
        self.production: list[dict[str, Any]] = []
        self._last_md = ""
        self._last_actor = "system"

    def add(
        self,
        log: str,
        position: int,
        stream_id: str,
        event_type: str,
        at_us: int,
        payload: str,
        metadata: str,
    ) -> None:
        if metadata != self._last_md:  # the events of one command share their metadata
            self._last_md = metadata
            try:
                self._last_actor = str(json.loads(metadata).get("actor", "system"))
            except (ValueError, AttributeError):
                self._last_actor = "?"
        actor = self._last_actor
        self.actors[actor] += 1
        self.types[f"{log}.{event_type}"] += 1
        if log != "registry" or event_type not in APPROVAL_TYPES:
            return
        try:
            body: dict[str, Any] = json.loads(payload)
        except ValueError:
            body = {}
        entry = {
            "log": log,
            "position": position,
            "at": iso(at_us),
            "type": event_type,
            "actor": actor,
            "stream_id": stream_id,
            "version": body.get("version"),
            "from_stage": body.get("from_stage"),
            "to_stage": body.get("to_stage"),
            "request_id": body.get("request_id"),
            "comment": body.get("comment") or body.get("reason") or "",
        }
        self.approvals.append(entry)
        stages = (body.get("to_stage"), body.get("from_stage"))
        if event_type == "VersionStageChanged" and PRODUCTION in stages:
            self.production.append(entry)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "summary",
            "events": sum(self.actors.values()),
            "actors": dict(sorted(self.actors.items())),
            "types": dict(sorted(self.types.items())),
            "approvals": self.approvals,
            "production_changes": self.production,
        }


class LogSection:
    """What the manifest says of one log's part of the bundle."""

    def __init__(self, log: str, first: int, anchor: bytes) -> None:
        self.log, self.first, self.anchor = log, first, anchor
        self.last = first - 1
        self.count = 0
        self.disclosed = 0
        self.head = anchor

    def as_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "disclosed": self.disclosed,
            "anchor": self.anchor.hex(),
            "head": self.head.hex(),
        }


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


__all__ = ["GENESIS", "BundleWriter", "Summary", "encode", "iso", "signing_message"]
