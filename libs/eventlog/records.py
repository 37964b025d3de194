"""Plain records that cross the store's boundary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from eventlog.events import DomainEvent, EventRegistry, Metadata
from modelog.shared.hashchain import ChainRow, micros


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended, already encoded (payload is canonical JSON)."""

    type: str
    schema_version: int
    payload_json: str

    @classmethod
    def of(cls, event: DomainEvent) -> NewEvent:
        return cls(event.type, event.schema_version, event.payload_json())


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """A committed event exactly as stored."""

    log: str
    position: int
    stream_id: str
    stream_version: int
    event_id: str
    type: str
    schema_version: int
    payload_json: str
    metadata_json: str
    recorded_at: datetime
    prev_hash: bytes
    hash: bytes

    def payload(self) -> dict[str, Any]:
        # orjson: projections read every event's payload (a 1,000-point metric batch is ~40 KB), and
        # json.loads was 6% of a server's samples under ingest. It refuses what canonical JSON never
        # holds but an old or hand-made payload might (NaN, integers past 64 bits): json reads those.
        try:
            value: dict[str, Any] = orjson.loads(self.payload_json)
        except orjson.JSONDecodeError:
            value = json.loads(self.payload_json)
        return value

    def metadata(self) -> Metadata:
        return Metadata.model_validate_json(self.metadata_json)

    @property
    def occurred_at(self) -> datetime:
        """When the fact happened: its origin's time for imported history, else when it was recorded.
        Domain answers (history, as-of, lineage) use this; the log's order and chain use recorded_at."""
        if '"origin"' not in self.metadata_json:  # cheap: almost every event is not imported
            return self.recorded_at
        origin = self.metadata().origin
        if origin is None:
            return self.recorded_at
        return datetime.fromtimestamp(origin.at_ms / 1000, UTC)

    def decode(self, registry: EventRegistry) -> DomainEvent:
        return registry.decode(self.type, self.schema_version, self.payload())

    def chain_row(self) -> ChainRow:
        return ChainRow(
            self.log,
            self.position,
            self.stream_id,
            self.stream_version,
            self.event_id,
            self.type,
            self.schema_version,
            micros(self.recorded_at),
            self.payload_json,
            self.metadata_json,
            self.prev_hash,
            self.hash,
        )


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a command's events landed. `replayed` is True when an idempotency key matched."""

    stream_id: str
    first_position: int
    last_position: int
    stream_version: int
    replayed: bool = False

    @property
    def positions(self) -> range:
        return range(self.first_position, self.last_position + 1)
