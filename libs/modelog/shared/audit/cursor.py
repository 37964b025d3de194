"""Subscription cursors: the last position seen of each log, as an opaque string that a client hands
back to resume exactly after it (the audit service writes them, the SDK reads and writes them too)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

from modelog.shared.errors import InvalidArgument

PREFIX = "c1."
_B64 = re.compile(r"[A-Za-z0-9_-]*")


def encode_cursor(positions: Mapping[str, int]) -> str:
    """Opaque to clients; inside, `log=position` pairs (log names are plain identifiers)."""
    raw = ",".join(f"{log}={pos}" for log, pos in positions.items()).encode()
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, int]:
    if not cursor.startswith(PREFIX):
        raise InvalidArgument.field("from_cursor", "not a cursor from this server (nor 'now' or empty)")
    body = cursor[len(PREFIX) :]
    if not _B64.fullmatch(body):
        raise InvalidArgument.field("from_cursor", "the cursor is damaged")
    try:
        text = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        pairs = (item.split("=") for item in text.split(",") if item)
        positions = {log: int(pos) for log, pos in pairs}
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.field("from_cursor", "the cursor is damaged") from None
    if any(v < 0 for v in positions.values()):
        raise InvalidArgument.field("from_cursor", "positions in a cursor are >= 0")
    return positions
