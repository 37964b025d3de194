"""The compliance bundle's format: one JSON-lines file, signed, that verifies with no server and no database.

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

The audit service writes bundles (modelog_services.audit.bundle); the SDK verifies them offline
(modelog.shared.audit.verify), both with this file's encoder, summary and manifest sections.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

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
