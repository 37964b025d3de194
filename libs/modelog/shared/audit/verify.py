"""Offline verification of a compliance bundle: signature, every chain, manifest and summary.

Pure: reads lines of bytes, needs no server, no database and no network.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from modelog.shared.audit.bundle import FORMAT, VERSION, LogSection, Summary, encode, signing_message
from modelog.shared.audit.keys import check_signature, key_id, raw_public
from modelog.shared.hashchain import canonical_bytes, link

_HEX64 = frozenset("0123456789abcdef")


@dataclass
class Outcome:
    ok: bool = True
    reason: str = ""
    log: str = ""
    position: int = 0
    """The first bad position of `log` (0 when the problem is not in an event)."""
    line: int = 0
    events: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    key_id: str = ""
    key_pinned: bool = False
    """True when the signature was checked against a key the caller supplied."""
    created_at: str = ""
    scope: dict[str, Any] = field(default_factory=dict)

    def where(self) -> str:
        return f"{self.log} position {self.position}" if self.position else f"line {self.line}"


class _Broken(Exception):
    def __init__(self, reason: str, log: str = "", position: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.log, self.position = reason, log, position


def _hex32(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 64 or not _HEX64.issuperset(value):
        raise ValueError("not 64 lowercase hex digits")
    return bytes.fromhex(value)


class BundleVerifier:
    def __init__(self, public_key: Ed25519PublicKey | None = None) -> None:
        self.pinned = public_key
        self.out = Outcome(key_pinned=public_key is not None)
        self._sha = hashlib.sha256()
        self._sections: dict[str, LogSection] = {}
        self._summary = Summary()
        self._logs: list[str] = []
        self._signature: dict[str, Any] | None = None
        self._manifest: dict[str, Any] | None = None
        self._summary_line: dict[str, Any] | None = None

    def run(self, lines: Iterable[bytes]) -> Outcome:
        lineno = 0
        try:
            lineno = self._walk(lines)
            self._finish()
        except _Broken as exc:
            self.out.ok = False
            self.out.reason, self.out.log, self.out.position = exc.reason, exc.log, exc.position
            self.out.line = self.out.line or lineno
        return self.out

    def _walk(self, lines: Iterable[bytes]) -> int:
        it = iter(lines)
        first = next(it, b"")
        self._header(first)
        self._sha.update(first)
        n = 1
        log, section = "", None
        prev_hex, prev = "", b""
        expected = 0
        add = self._summary.add
        for n, raw in enumerate(it, start=2):
            self.out.line = n
            if section is not None and raw[:1] != b"{":
                raw = raw or b"?"  # anything but an object inside a log section is an event row
            if raw[:1] != b"{":
                if section is None:
                    raise _Broken("an event row comes before any log section")
                try:
                    row = json.loads(raw)
                    kind = row[0]
                    if row[1] != expected:
                        raise _Broken(
                            f"position {expected} is missing (next row is position {row[1]})"
                            if isinstance(row[1], int) and row[1] > expected
                            else f"row {row[1]!r} is out of order (expected position {expected})",
                            log,
                            expected,
                        )
                    if kind == "e" and len(row) == 12:
                        if row[10] != prev_hex:
                            raise _Broken(
                                f"does not link to the hash of position {expected - 1}", log, expected
                            )
                        digest = link(prev, canonical_bytes(log, *row[1:10]))
                        hx = digest.hex()
                        if hx != row[11]:
                            raise _Broken("stored hash does not match its content", log, expected)
                        add(log, expected, row[2], row[5], row[7], row[8], row[9])
                        section.disclosed += 1
                        prev, prev_hex = digest, hx
                    elif kind == "x" and len(row) == 4:
                        if row[2] != prev_hex:
                            raise _Broken(
                                f"does not link to the hash of position {expected - 1}", log, expected
                            )
                        prev, prev_hex = _hex32(row[3]), row[3]
                    else:
                        raise _Broken("not an event row", log, expected)
                except _Broken:
                    raise
                except (ValueError, TypeError, IndexError, KeyError) as exc:
                    raise _Broken(f"unreadable event row ({exc})", log, expected) from None
                expected += 1
                section.count += 1
                section.last = expected - 1
                section.head = prev
                self._sha.update(raw)
                continue
            try:
                obj = self._object(raw, n)
            except _Broken as exc:
                if section is None:
                    raise
                raise _Broken(f"unreadable event row ({exc.reason})", log, expected) from None
            kind = obj.get("kind")
            if kind == "signature":
                self._signature = obj
                if next(it, None) is not None:
                    raise _Broken("data after the signature line")
                return n
            self._sha.update(raw)
            if kind == "log":
                log = obj.get("log", "")
                if log not in self._logs or log in self._sections:
                    raise _Broken(f"unexpected log section {log!r}")
                try:
                    expected = int(obj["first"])
                    prev = _hex32(obj["anchor"])
                except (KeyError, ValueError, TypeError):
                    raise _Broken(f"log section {log!r} has a bad first position or anchor") from None
                prev_hex = obj["anchor"]
                section = self._sections[log] = LogSection(log, expected, prev)
            elif kind == "manifest":
                self._manifest, section = obj, None
            elif kind == "summary":
                self._summary_line = obj
            else:
                raise _Broken(f"unknown line kind {kind!r}")
        raise _Broken("the bundle ends without a signature (truncated?)")

    def _header(self, raw: bytes) -> None:
        self.out.line = 1
        head = self._object(raw, 1)
        if head.get("format") != FORMAT or head.get("version") != VERSION:
            raise _Broken(f"not a {FORMAT} version {VERSION} file")
        self._logs = list(head.get("logs", []))
        self.out.created_at = str(head.get("created_at", ""))
        self.out.scope = dict(head.get("scope", {}))

    @staticmethod
    def _object(raw: bytes, n: int) -> dict[str, Any]:
        try:
            obj = json.loads(raw)
        except ValueError:
            raise _Broken(f"line {n} is not valid JSON") from None
        if not isinstance(obj, dict):
            raise _Broken(f"line {n} is not an object")
        return obj

    def _finish(self) -> None:
        sections = {n: s.as_dict() for n, s in self._sections.items()}
        if self._manifest is None or self._summary_line is None:
            raise _Broken("the manifest or the summary is missing")
        stated = self._manifest.get("logs", {})
        for name in self._logs:
            if name not in sections:
                raise _Broken(f"the {name} log has no section")
            mine, theirs = sections[name], stated.get(name, {})
            if mine != theirs:
                diff = next(k for k in mine if mine[k] != theirs.get(k))
                pos = mine["last"] + 1 if diff in ("last", "count", "head") else mine["first"]
                raise _Broken(
                    f"the manifest says {diff}={theirs.get(diff)!r} but the rows give {mine[diff]!r} "
                    "(events removed or added at the end?)",
                    name,
                    pos,
                )
        summary = json.loads(encode(self._summary.as_dict()))
        if summary != self._summary_line:
            raise _Broken("the summary does not match the events")
        self.out.manifest, self.out.summary = sections, summary
        self.out.events = sum(s["count"] for s in sections.values())
        self._check_signature()

    def _check_signature(self) -> None:
        sig = self._signature or {}
        try:
            embedded = Ed25519PublicKey.from_public_bytes(bytes.fromhex(sig["public_key"]))
            signature = bytes.fromhex(sig["signature"])
        except (KeyError, ValueError, TypeError):
            raise _Broken("the signature line is unreadable") from None
        key = self.pinned or embedded
        self.out.key_id = key_id(raw_public(key))
        if self.pinned is not None and raw_public(self.pinned) != raw_public(embedded):
            raise _Broken(
                f"signed by key {key_id(raw_public(embedded))}, not by the expected key {self.out.key_id}"
            )
        if not check_signature(key, signature, signing_message(self._sha.digest())):
            raise _Broken(f"the signature does not verify with key {self.out.key_id}")


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from fh


def locate_change(lines: Iterable[bytes]) -> tuple[str, int, int]:
    """(log, position, line) of the first line that is not as the writer encodes it; ("", 0, 0) if none.

    Used when every chain holds but the signature does not: a change that decodes to the same values
    (say, hex digits in another case) is still a change, and this names where it is.
    """
    log, position = "", 0
    for n, raw in enumerate(lines, start=1):
        try:
            value = json.loads(raw)
        except ValueError:
            return log, position, n
        if isinstance(value, dict) and value.get("kind") == "log":
            log, position = str(value.get("log", "")), int(value.get("first", 0)) - 1
        if isinstance(value, list):
            position += 1
        if (encode(value) + "\n").encode() != raw:
            return (log, position, n) if isinstance(value, list) else ("", 0, n)
    return "", 0, 0


def verify_lines(lines: Callable[[], Iterable[bytes]], public_key: Ed25519PublicKey | None = None) -> Outcome:
    """`lines` is called again for a second pass when only the signature fails."""
    out = BundleVerifier(public_key).run(lines())
    if not out.ok and not out.position and "signature does not verify" in out.reason:
        log, position, line = locate_change(lines())
        if line:
            out.log, out.position, out.line = log, position, line
            out.reason += f"; line {line} was changed"
    return out


def verify_file(path: Path, public_key: Ed25519PublicKey | None = None) -> Outcome:
    return verify_lines(lambda: _lines(path), public_key)


def verify_bytes(data: bytes, public_key: Ed25519PublicKey | None = None) -> Outcome:
    return verify_lines(lambda: data.splitlines(keepends=True), public_key)
