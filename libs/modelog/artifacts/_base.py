"""What the artifacts SDK modules share: sizes, progress reporting and the connection."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

from modelog._client import Connection
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc

T = TypeVar("T")

CHUNK = 1 << 20
STREAM_HASH_MIN = 64 << 20
"""Files at least this large and not in the hash cache are hashed by the server as they upload."""
WORKERS = 4
BATCH_BLOB_MAX = 1 << 20
"""Files up to this size travel whole in UploadBatch messages (the server's limit for them)."""
BATCH_FILES, BATCH_BYTES = 256, 4 << 20
RACY_NS = 1_000_000_000
"""A file modified this close to when it was hashed may change again within one mtime tick: its cache
entry is re-checked next time (git's "racily clean" rule)."""


class Progress(Protocol):
    """Where long work reports itself (the CLI draws a bar; the default prints to a terminal)."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


class _TerminalProgress:
    """Silent unless stderr is a terminal and the work lasts more than a second."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.label, self.total, self.done, self.t0, self.shown = "", 0, 0, 0.0, 0.0

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done, self.t0, self.shown = label, total, 0, time.monotonic(), 0.0

    def advance(self, n: int) -> None:
        with self.lock:
            self.done += n
            now = time.monotonic()
            if sys.stderr.isatty() and now - self.t0 > 1 and now - self.shown > 0.5:
                self.shown = now
                pct = 100 * self.done / max(1, self.total)
                print(f"\r{self.label}: {pct:5.1f}%", end="", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.shown:
            print(f"\r{self.label}: done  ", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _connected(conn: Connection | None) -> Iterator[Connection]:
    if conn is not None:
        yield conn
        return
    with Connection() as own:
        yield own


def stub(conn: Connection) -> artifacts_pb2_grpc.ArtifactsStub:
    return artifacts_pb2_grpc.ArtifactsStub(conn.channel)


def groups(
    items: Iterable[T], size: Callable[[T], int], *, alone: int, files: int, total: int
) -> list[list[T]]:
    """Small items many to a call, up to `files` of them or `total` bytes; items of `alone` bytes or
    more in a call of their own (one round trip per file costs more than the file, for small ones)."""
    out: list[list[T]] = []
    group: list[T] = []
    held = 0
    for item in items:
        n = size(item)
        if n >= alone:
            out.append([item])
            continue
        group.append(item)
        held += n
        if len(group) >= files or held >= total:
            out.append(group)
            group, held = [], 0
    if group:
        out.append(group)
    return out
