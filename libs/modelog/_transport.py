"""How SDK calls reach a server: straight over gRPC (online), or into a local journal (offline).

Both speak in (rpc name, request message, idempotency key). The journal stores exactly that, so
`modelog sync` later replays the same calls with the same keys: the result is as if online.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import Message

from modelog._client import Connection
from modelog._gen.tracking.v1 import tracking_pb2


class Transport(Protocol):
    offline: bool

    def call(self, rpc: str, request: Message, key: str | None = None) -> Any: ...

    def send_metrics(self, batches: list[tracking_pb2.MetricBatch]) -> None: ...

    def close(self) -> None: ...


class Online:
    offline = False

    def __init__(self, conn: Connection) -> None:
        from modelog._gen.tracking.v1 import tracking_pb2_grpc

        self.conn = conn
        self.tracking = tracking_pb2_grpc.TrackingStub(conn.channel)

    def call(self, rpc: str, request: Message, key: str | None = None) -> Any:
        md = [("idempotency-key", key or uuid.uuid4().hex)]
        return getattr(self.tracking, rpc)(request, metadata=md, timeout=60)  # raises modelog.errors

    def send_metrics(self, batches: list[tracking_pb2.MetricBatch]) -> None:
        # One client stream per flush; every batch carries its own idempotency key, so resending
        # the whole stream after a failure stores each batch once.
        self.tracking.LogMetrics(iter(batches), timeout=120)

    def close(self) -> None:
        self.conn.close()


class Journal:
    """Offline: append every call to a JSON-lines journal under MODELOG_HOME/offline/."""

    offline = True

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"journal-{uuid.uuid4().hex}.jsonl"
        self._lock = threading.Lock()
        self._fh = open(self.path, "a")  # noqa: SIM115 - kept open for the session
        fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # `modelog sync` skips journals in use

    def _write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"))
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def call(self, rpc: str, request: Message, key: str | None = None) -> Any:
        self._write(
            {
                "rpc": rpc,
                "key": key or uuid.uuid4().hex,
                "request": json_format.MessageToDict(request, preserving_proto_field_name=True),
            }
        )
        return None

    def send_metrics(self, batches: list[tracking_pb2.MetricBatch]) -> None:
        for b in batches:
            self._write(
                {
                    "rpc": "LogMetricsBatch",
                    "key": b.idempotency_key,
                    "request": json_format.MessageToDict(b, preserving_proto_field_name=True),
                }
            )

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def journal_entries(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path) as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield number, json.loads(line)


@dataclass
class SyncReport:
    journals: int = 0
    calls: int = 0
    skipped_in_use: int = 0


def sync(directory: Path, online: Online, progress: Callable[[int], None] | None = None) -> SyncReport:
    """Replay offline journals in order, each call with its recorded idempotency key.

    Progress is saved next to each journal (`.done`), so an interrupted sync resumes; and calls that
    were applied but not yet saved replay harmlessly, because the server recognises their keys.
    """
    report = SyncReport()
    for path in sorted(directory.glob("journal-*.jsonl"), key=lambda p: p.stat().st_mtime):
        with open(path) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                report.skipped_in_use += 1
                continue
            done_path = path.with_suffix(".done")
            done = int(done_path.read_text()) if done_path.exists() else 0
            for number, entry in journal_entries(path):
                if number <= done:
                    continue
                request_type = getattr(tracking_pb2, _REQUEST_TYPES[entry["rpc"]])
                request = json_format.ParseDict(entry["request"], request_type())
                online.call(entry["rpc"], request, entry["key"])
                report.calls += 1
                if progress:
                    progress(1)
                done_path.write_text(str(number))
            path.unlink()
            done_path.unlink(missing_ok=True)
            report.journals += 1
    return report


_REQUEST_TYPES = {
    "StartRun": "StartRunRequest",
    "LogParams": "LogParamsRequest",
    "SetTags": "SetTagsRequest",
    "DeleteTag": "DeleteTagRequest",
    "LogDatasetInput": "LogDatasetInputRequest",
    "FinishRun": "FinishRunRequest",
    "LogMetricsBatch": "MetricBatch",
}
