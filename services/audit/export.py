"""Server side of the compliance export: read every log's range, write bundle lines, sign at the end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from eventlog import NotFound
from eventlog.records import RecordedEvent
from eventlog.sources import LogReader
from modelog.shared.audit.bundle import iso
from modelog.shared.hashchain import GENESIS, micros
from modelog_services.audit.bundle import BundleWriter
from modelog_services.audit.signing import SigningKey

CHUNK = 1 << 20
BATCH = 5_000


@dataclass(frozen=True)
class Scope:
    from_us: int | None = None
    to_us: int | None = None
    """Exclusive."""
    model: str = ""

    def as_dict(self) -> dict[str, str | None]:
        return {
            "from": iso(self.from_us) if self.from_us is not None else None,
            "to": iso(self.to_us) if self.to_us is not None else None,
            "model": self.model or None,
        }


async def _first_at_or_after(reader: LogReader, log: str, head: int, at_us: int) -> int:
    """Positions are in commit order and recorded_at never goes backwards along a log: bisect."""
    lo, hi = 1, head + 1
    while lo < hi:
        mid = (lo + hi) // 2
        ev = (await reader.read(log, mid, 1))[0]
        if micros(ev.recorded_at) >= at_us:
            hi = mid
        else:
            lo = mid + 1
    return lo


async def _range(reader: LogReader, log: str, scope: Scope) -> tuple[int, int, bytes]:
    """(first, last, anchor) of the log's part of the export; last < first when it is empty."""
    head = await reader.head(log)
    first = 1 if scope.from_us is None else await _first_at_or_after(reader, log, head, scope.from_us)
    last = head if scope.to_us is None else await _first_at_or_after(reader, log, head, scope.to_us) - 1
    anchor = GENESIS if first == 1 else (await reader.read(log, first - 1, 1))[0].hash
    return first, max(last, first - 1), anchor


async def _model_streams(reader: LogReader, name: str, last: int) -> set[str]:
    """The registry streams of every model that was called `name` up to position `last`. A name that
    no model had by then is NOT_FOUND, and the message says whether a model took it later."""
    streams = {f"model-name-{name}"}
    later: RecordedEvent | None = None
    position, head = 1, await reader.head("registry")
    while position <= head and later is None:
        batch = await reader.read("registry", position, BATCH)
        if not batch:
            break
        for ev in batch:
            if (
                ev.type in ("ModelRegistered", "ModelRenamed")
                and json.loads(ev.payload_json).get("name") == name
            ):
                if ev.position <= last:
                    streams.add(ev.stream_id)
                elif later is None:
                    later = ev
        position = batch[-1].position + 1
    if len(streams) > 1:
        return streams
    if later is None:
        raise NotFound(f"no registered model was ever named {name!r} (in the registry log)")
    how = "registered" if later.type == "ModelRegistered" else "renamed to that name"
    raise NotFound(
        f"model {name!r} exists but has no events in this range: it was {how} at "
        f"{iso(micros(later.recorded_at))} (registry #{later.position}), after the range ends"
    )


async def export_bundle(
    reader: LogReader, logs: list[str], key: SigningKey, scope: Scope
) -> AsyncIterator[bytes]:
    """The bundle's bytes in chunks of about a megabyte. The range of each log is fixed at the start."""
    writer = BundleWriter()
    ranges = {log: await _range(reader, log, scope) for log in logs}
    disclose: Callable[[RecordedEvent], bool] | None = None
    if scope.model:
        registry_last = ranges["registry"][1] if "registry" in ranges else 0
        streams = await _model_streams(reader, scope.model, registry_last)

        def disclose(ev: RecordedEvent) -> bool:
            return ev.log == "registry" and ev.stream_id in streams

    parts = [writer.header(logs, datetime.now(UTC).isoformat().replace("+00:00", "Z"), scope.as_dict())]
    size = len(parts[0])
    for log, (first, last, anchor) in ranges.items():
        parts.append(writer.begin_log(log, first, anchor))
        position = first
        while position <= last:
            batch = await reader.read(log, position, min(BATCH, last - position + 1))
            if not batch:
                break
            data = writer.events(batch, disclose)
            parts.append(data)
            size += len(data)
            position = batch[-1].position + 1
            if size >= CHUNK:
                yield b"".join(parts)
                parts, size = [], 0
    parts.append(writer.finish(key.sign, key.raw_public, key.key_id))
    yield b"".join(parts)
