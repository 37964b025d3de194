"""IngestLocal's file copies in worker processes.

Storing ten thousand small files is some fifteen system calls per file (open, read, create, write,
seal, rename, ...), each of which releases and retakes the GIL. Two ingest threads in the server
spent their time handing the GIL to each other and to the event loop: a bare 10,000-file ingest took
2.4 s on two threads and 1.7-2.0 s in two processes. So each worker is a small process of its own
(`python -m modelog_services.artifacts.ingestworker`) holding a FileBlobStore on the same directory,
fed batches over a pipe. The server keeps doing everything else (the events, the answers).

A worker dies with the server (PR_SET_PDEATHSIG, and the end of its input), is replaced if it dies
alone, and the pool is closed with the platform. MODELOG_INGEST_WORKERS sets how many (default: one
per core, at most 4); 0 keeps the copies on threads in the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from eventlog.errors import Unavailable

from .blobstore import Ingested

WORKERS_ENV = "MODELOG_INGEST_WORKERS"
_HEADER = 8


def workers_from_env() -> int:
    """How many ingest workers to run (0: none, ingest on threads in the server)."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if not raw:
        return min(4, os.cpu_count() or 1)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{WORKERS_ENV} must be a number of processes (0: none), not {raw!r}") from None
    if not 0 <= value <= 64:
        raise ValueError(f"{WORKERS_ENV} must be between 0 and 64, not {value}")
    return value


class WorkerFailed(Unavailable):
    """A worker died or answered nonsense; its batch may be partly stored, which a retry (the SDK
    retries UNAVAILABLE) completes: storing by content is idempotent."""


def write_frame(out: IO[bytes], value: object) -> None:
    data = json.dumps(value, separators=(",", ":")).encode()
    out.write(len(data).to_bytes(_HEADER, "little") + data)
    out.flush()


def read_frame(inp: IO[bytes]) -> object | None:
    """The next value, or None at the end of the stream."""
    header = inp.read(_HEADER)
    if len(header) < _HEADER:
        return None
    size = int.from_bytes(header, "little")
    data = inp.read(size)
    if len(data) < size:
        return None
    value: object = json.loads(data)
    return value


class _Worker:
    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelog_services.artifacts.ingestworker", str(root), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )

    def call(self, items: Sequence[tuple[str, str | None]]) -> list[Ingested]:
        """Blocking: send one batch and wait for its results (run on a thread)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            write_frame(self.proc.stdin, [[path, expected] for path, expected in items])
            answer = read_frame(self.proc.stdout)
        except (OSError, ValueError) as exc:
            raise WorkerFailed(f"ingest worker {self.proc.pid} failed: {exc}") from exc
        if isinstance(answer, dict) and "error" in answer:
            raise OSError(str(answer["error"]))
        if not isinstance(answer, list) or len(answer) != len(items):
            code = self.proc.poll()
            raise WorkerFailed(
                f"ingest worker {self.proc.pid} "
                + (f"exited with status {code}" if code is not None else "sent an answer that does not fit")
            )
        try:
            return [Ingested.from_row(row) for row in answer]
        except (TypeError, ValueError) as exc:
            pid = self.proc.pid
            raise WorkerFailed(f"ingest worker {pid} sent an answer that does not fit: {exc}") from exc

    def close(self, timeout: float = 2.0) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # the worker's input ends: it exits
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class IngestPool:
    """Up to `size` worker processes, started on first use; each call takes an idle one."""

    def __init__(self, root: Path, size: int) -> None:
        self.root, self.size = root, size
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._free: asyncio.Semaphore | None = None  # made in the server's loop, on first use
        self._lock = threading.Lock()
        self._closed = False

    async def ingest_many(self, items: Sequence[tuple[str, str | None]]) -> list[Ingested]:
        # Calls beyond the number of workers wait here, on the event loop: waiting on a thread would
        # hold one of the loop's few executor threads each, and every other to_thread of the server
        # would queue behind a burst of uploads.
        if self._free is None:
            self._free = asyncio.Semaphore(self.size)
        async with self._free:
            return await asyncio.to_thread(self._call, items)

    def _call(self, items: Sequence[tuple[str, str | None]]) -> list[Ingested]:
        """One batch on an idle (or new) worker; blocking. Callers bound the concurrency."""
        worker = self._take()
        try:
            results = worker.call(items)
        except WorkerFailed:
            self._drop(worker)
            raise
        except BaseException:
            self._give_back(worker)
            raise
        self._give_back(worker)
        return results

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise WorkerFailed("the ingest pool is closed (the server is stopping)")
            while self._idle:
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
                self._all.remove(worker)  # died while idle (killed, out of memory): replace it
                worker.close(timeout=0)
            worker = _Worker(self.root)
            self._all.append(worker)
            return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if self._closed:
                worker.close()
            else:
                self._idle.append(worker)

    def _drop(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        worker.close(timeout=0)

    def warm(self) -> None:
        """Start the workers now, without waiting for them (a same-host client just asked for the
        store: its IngestLocal calls follow once it has scanned its files)."""
        with self._lock:
            while not self._closed and len(self._all) < self.size:
                worker = _Worker(self.root)
                self._all.append(worker)
                self._idle.append(worker)

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._all]

    def close(self) -> None:
        """Stop every worker (a batch in flight finishes first, its caller gets its answer)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()
