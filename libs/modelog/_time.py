"""Protobuf timestamps as the SDK hands them out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def when(ts: Any) -> datetime | None:
    """An unset Timestamp (all zeros) is "never", not 1970."""
    return ts.ToDatetime(tzinfo=UTC) if ts.seconds or ts.nanos else None
