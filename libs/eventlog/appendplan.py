"""Laying out one group-commit batch under the log's lock: each command checked against the stream
versions and idempotency keys read under it, then given its positions, stream versions and hash-chain
links. Pure: the transaction (`groupcommit`) reads the state, calls `plan`, and inserts the rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from eventlog.errors import ConcurrencyConflict, IdempotencyKeyReused
from eventlog.records import AppendResult, NewEvent, RecordedEvent
from modelog.shared.hashchain import GENESIS, canonical_bytes, link, micros


@dataclass
class Command:
    """One append waiting for its batch; its caller awaits `future`."""

    stream_id: str
    expected_version: int | None
    events: Sequence[NewEvent]
    metadata_json: str
    idempotency_key: str | None
    future: asyncio.Future[AppendResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def plan(
    log: str,
    batch: list[Command],
    head: asyncpg.Record | None,
    versions: dict[str, int],
    seen: dict[str, AppendResult],
) -> tuple[list[AppendResult | Exception], list[RecordedEvent], list[str | None]]:
    """Check each command against the state read under the lock (head: position, hash and
    recorded_at at indices 2, 6 and 7) and lay out its rows: (outcome per command, rows, the
    idempotency key of each row). `versions` and `seen` are updated as commands are laid out."""
    s = log
    position: int = head[2] if head else 0
    prev_hash: bytes = head[6] if head else GENESIS
    now = datetime.now(UTC)
    if head is not None and head[7] > now:
        now = head[7]  # recorded_at never goes backwards along the log
    now_us = micros(now)
    outcomes: list[AppendResult | Exception] = []
    planned: list[RecordedEvent] = []
    planned_keys: list[str | None] = []
    for cmd in batch:
        key = cmd.idempotency_key
        if key and key in seen:
            prior = seen[key]
            if prior.stream_id != cmd.stream_id:
                outcomes.append(
                    IdempotencyKeyReused(
                        f"idempotency key {key!r} was already used for stream {prior.stream_id!r} "
                        f"in the {s} log; use a new key for a different command"
                    )
                )
            else:
                outcomes.append(prior)
            continue
        current = versions.get(cmd.stream_id, 0)
        if cmd.expected_version is not None and cmd.expected_version != current:
            outcomes.append(ConcurrencyConflict(s, cmd.stream_id, cmd.expected_version, current))
            continue
        if not cmd.events:
            outcomes.append(AppendResult(cmd.stream_id, position + 1, position, current))
            continue
        first = position + 1
        for ev in cmd.events:
            position += 1
            current += 1
            event_id = str(uuid.uuid4())
            digest = link(
                prev_hash,
                canonical_bytes(
                    s,
                    position,
                    cmd.stream_id,
                    current,
                    event_id,
                    ev.type,
                    ev.schema_version,
                    now_us,
                    ev.payload_json,
                    cmd.metadata_json,
                ),
            )
            planned.append(
                RecordedEvent(
                    s,
                    position,
                    cmd.stream_id,
                    current,
                    event_id,
                    ev.type,
                    ev.schema_version,
                    ev.payload_json,
                    cmd.metadata_json,
                    now,
                    prev_hash,
                    digest,
                )
            )
            planned_keys.append(key)
            prev_hash = digest
        versions[cmd.stream_id] = current
        outcomes.append(AppendResult(cmd.stream_id, first, position, current))
        if key:
            seen[key] = AppendResult(cmd.stream_id, first, position, current, replayed=True)
    return outcomes, planned, planned_keys
