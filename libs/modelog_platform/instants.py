""" "As of" instants in requests, checked the same way by every service that travels in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from eventlog import InvalidArgument

CLOCK_SKEW = timedelta(seconds=5)
"""A client clock this far ahead of the server's still counts as now."""


def as_of(request: Any, field: str = "as_of") -> datetime | None:
    """The instant a request asks about, or None for now. The future has no answer yet, so it is bad
    input rather than "not found" (which is what an instant before the thing existed gets)."""
    if not request.HasField(field):
        return None
    at: datetime = getattr(request, field).ToDatetime(tzinfo=UTC)
    now = datetime.now(UTC)
    if at > now + CLOCK_SKEW:
        server = now.isoformat(timespec="seconds")
        raise InvalidArgument.field(
            field, f"{at.isoformat()} is in the future (the server's time is {server})"
        )
    return at
