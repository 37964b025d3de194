"""Keyset paging shared by every search that compiles to SQL: bind parameters, sort keys, "rows after
this cursor", and page tokens bound to the query that made them.

A token holds the last row's sort values (not an offset), so pages stay stable while rows are added
and no page scans what earlier pages returned; its fingerprint ties it to one filter, order and view.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventlog import InvalidArgument
from modelog.shared.inputs import parse_json


@dataclass
class Params:
    """Bind parameters, numbered as they are added."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


@dataclass(frozen=True)
class SortKey:
    value: str  # SQL expression
    cast: str
    descending: bool
    rank: str | None = None  # 0 a value, 1 NaN, 2 missing; None when the value is never missing


def order_sql(keys: Sequence[SortKey]) -> str:
    parts = []
    for k in keys:
        if k.rank:
            parts.append(k.rank)
        parts.append(f"{k.value} {'DESC' if k.descending else 'ASC'}")
    return ", ".join(parts)


def after(keys: Sequence[SortKey], cursor: Sequence[list[Any]], p: Params) -> str:
    """Rows strictly after the cursor in the order of `keys` (a lexicographic comparison)."""
    alternatives: list[str] = []
    equal: list[str] = []
    for k, (rank, value) in zip(keys, cursor, strict=True):
        if k.rank:
            r = p.add(rank, "int")
            alternatives.append(" AND ".join([*equal, f"{k.rank} > {r}"]))
            equal.append(f"{k.rank} = {r}")
            if rank != 0:
                continue  # every NaN, every missing value ties: the next key decides
        v = p.add(value, k.cast)
        alternatives.append(" AND ".join([*equal, f"{k.value} {'<' if k.descending else '>'} {v}"]))
        equal.append(f"{k.value} = {v}")
    return "(" + " OR ".join(f"({a})" for a in alternatives) + ")"


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def encode_token(fingerprint: str, cursor: list[list[Any]]) -> str:
    raw = json.dumps({"q": fingerprint, "k": cursor}, separators=(",", ":"))  # Infinity allowed
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _bad_token() -> InvalidArgument:
    return InvalidArgument.field(
        "page_token", "is not a token of this search (garbled, or from another filter, order or view)"
    )


def decode_token(token: str, fingerprint: str, keys: Sequence[SortKey]) -> list[list[Any]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = parse_json(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_token() from None
    if not isinstance(data, dict) or data.get("q") != fingerprint or not isinstance(data.get("k"), list):
        raise _bad_token()
    cursor: list[list[Any]] = data["k"]
    if len(cursor) != len(keys) or not all(_valid(k, c) for k, c in zip(keys, cursor, strict=True)):
        raise _bad_token()
    return cursor


def _valid(key: SortKey, entry: Any) -> bool:
    if not isinstance(entry, list) or len(entry) != 2:
        return False
    rank, value = entry
    if key.rank is None and rank is not None:
        return False
    if key.rank is not None and rank not in (0, 1, 2):
        return False
    if key.rank is not None and rank != 0:
        return value is None
    if key.cast == "text":
        return isinstance(value, str)
    if key.cast == "bigint":
        return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
