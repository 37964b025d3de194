"""Background batching of metric points: the training loop appends to a deque and returns.

A daemon thread drains the deque every `interval` seconds (or sooner when it fills), groups points
into columnar batches per run, and hands them to `send` with a fresh idempotency key; a batch that
fails transiently is resent with the same key, so the server stores it once. When more than
`max_queued` points wait (the network is down, say), new points spill to files under `spill_dir`
instead of blocking the caller or growing memory without bound; they are sent once the queue drains.

A batch the server refuses (a `modelog.errors` class that is not transient: the run finished, a bad
key) stops the sender: that first refusal is raised by every later `log`, `flush` and `close`, so
it is seen at once instead of points piling up that nobody will take. `flush` and `close` wait at
most their timeout.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelog.errors import FailedPrecondition, Internal, ModelogError

log = logging.getLogger("modelog.sdk")

FLUSH_TIMEOUT = 60.0
"""How long `flush` and `close` wait for the server by default."""

Point = tuple[str, str, float, int, int]
"""(run_id, key, value, step, timestamp_ms)"""


@dataclass
class Batch:
    run_id: str
    keys: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __len__(self) -> int:
        return len(self.keys)


Send = Callable[[list[Batch]], None]
"""Deliver batches (raises on failure; retried with the same keys)."""


class MetricBatcher:
    def __init__(
        self,
        send: Send,
        *,
        interval: float = 0.2,
        max_batch: int = 50_000,
        max_queued: int = 2_000_000,
        spill_dir: Path | None = None,
        retry_delays: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 5.0),
    ) -> None:
        self._send = send
        self.interval = interval
        self.max_batch = max_batch
        self.max_queued = max_queued
        self.spill_dir = spill_dir
        self.retry_delays = retry_delays
        self._queue: deque[Point] = deque()
        self._spill: list[Point] = []
        self._spill_files: deque[Path] = deque()
        self._lock = threading.Lock()  # guards spill state and the counters below
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self.enqueued = 0
        self.acknowledged = 0
        self.spilled = 0
        self.last_error: BaseException | None = None
        self.failure: ModelogError | None = None
        """The first refusal: set, the sender has stopped for good."""
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="modelog-metrics", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the training thread's side

    def log(self, run_id: str, metrics: dict[str, float], step: int, timestamp_ms: int | None = None) -> None:
        """Queue points and return at once. Never blocks on the network; raises the server's refusal
        of an earlier batch, or FailedPrecondition once closed."""
        self._check()
        ts = timestamp_ms if timestamp_ms is not None else time.time_ns() // 1_000_000
        queue = self._queue
        if len(queue) < self.max_queued:
            for key, value in metrics.items():
                queue.append((run_id, key, value, step, ts))
        else:
            self._spill_points([(run_id, k, v, step, ts) for k, v in metrics.items()])
        self.enqueued += len(metrics)  # single writer (the caller's thread); read by flush()

    def _spill_points(self, points: list[Point]) -> None:
        with self._lock:
            self._spill.extend(points)
            self.spilled += len(points)
            if len(self._spill) >= 10_000:
                self._write_spill_locked()

    def _write_spill_locked(self) -> None:
        if not self._spill:
            return
        if self.spill_dir is None:
            return  # kept in memory: no directory to spill to
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"spill-{time.time_ns()}-{uuid.uuid4().hex[:6]}.jsonl"
        with open(path, "w") as fh:
            for p in self._spill:
                fh.write(json.dumps(p) + "\n")
        self._spill_files.append(path)
        self._spill = []

    def _check(self) -> None:
        if self.failure is not None:
            raise copy.copy(self.failure)  # a fresh one each time: tracebacks do not pile up
        if self._closed:
            raise FailedPrecondition("metrics can no longer be logged: their sender is closed")

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait until every point queued before this call is acknowledged by the server: True once
        they are, False if `timeout` seconds passed first (the points stay queued: the server may be
        unreachable). Raises the server's refusal of a batch as soon as it is known."""
        target = self.enqueued
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.acknowledged < target:
                if self.failure is not None or not self._thread.is_alive():
                    break  # nobody will send what is left
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(0.5, remaining))
                self._wake.set()
        if self.failure is not None:
            raise copy.copy(self.failure)
        return self.acknowledged >= target

    def close(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Flush (as `flush`, raising what the server refused), then stop the sender."""
        try:
            return self.flush(timeout)
        finally:
            self._closed = True
            self._wake.set()
            self._thread.join(5)

    # ------------------------------------------------------------ the background thread

    def _run(self) -> None:
        try:
            while not self._closed and self.failure is None:
                self._wake.wait(self.interval)
                self._wake.clear()
                while self.failure is None and self._drain_once():
                    pass
        except BaseException as exc:  # a sender that died must make later calls raise, not wait
            self._stop(Internal(f"the metric sender stopped: {type(exc).__name__}: {exc}"))
            raise

    def _stop(self, failure: ModelogError) -> None:
        with self._idle:
            if self.failure is None:
                self.failure = failure
            self._idle.notify_all()

    def _take(self) -> list[Point]:
        points: list[Point] = []
        queue = self._queue
        with contextlib.suppress(IndexError):
            for _ in range(self.max_batch):
                points.append(queue.popleft())
        if points:
            return points
        with self._lock:
            if self._spill_files:
                path = self._spill_files.popleft()
                with open(path) as fh:
                    points = [tuple(json.loads(line)) for line in fh]
                os.unlink(path)
            elif self._spill:
                points, self._spill = self._spill, []
        return points

    def _drain_once(self) -> bool:
        points = self._take()
        if not points:
            return False
        # Points go out grouped by run and then by key (arrival order kept within a key): the server
        # stores each key's points as one columnar chunk and need not regroup them.
        grouped: dict[str, dict[str, list[Point]]] = {}
        for p in points:
            grouped.setdefault(p[0], {}).setdefault(p[1], []).append(p)
        batches: dict[str, Batch] = {}
        for run_id, by_key in grouped.items():
            b = batches[run_id] = Batch(run_id)
            for key, pts in by_key.items():
                b.keys.extend([key] * len(pts))
                b.values.extend(p[2] for p in pts)
                b.steps.extend(p[3] for p in pts)
                b.timestamps_ms.extend(p[4] for p in pts)
        if not self._deliver(list(batches.values())):
            return False
        with self._idle:
            self.acknowledged += len(points)
            self._idle.notify_all()
        return True

    def _deliver(self, batches: list[Batch]) -> bool:
        """Send until acknowledged (True); False when the server refused the batches for good."""
        attempt = 0
        while True:
            try:
                self._send(batches)
                self.last_error = None
                return True
            except ModelogError as exc:
                if not exc.transient:
                    log.warning("the server refused %d metric batches: %s", len(batches), exc.message)
                    self._stop(exc)
                    return False
                self.last_error = exc
            except Exception as exc:  # noqa: BLE001 - retried below (a broken connection, say)
                self.last_error = exc
            delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
            attempt += 1
            if attempt in (1, 10) or attempt % 50 == 0:
                log.warning(
                    "sending %d metric batches failed (%s); retrying every %.1fs",
                    len(batches),
                    self.last_error,
                    delay,
                )
            if self._closed and attempt > len(self.retry_delays):
                log.error("giving up on %d metric batches at exit: %s", len(batches), self.last_error)
                return False
            time.sleep(delay)
