"""Background batching of metric points: the training loop appends to a deque and returns.

A daemon thread drains the deque every `interval` seconds (or sooner when it fills), groups points
into columnar batches per run, and hands them to `send` with a fresh idempotency key; a batch that
fails transiently is resent with the same key, so the server stores it once. When more than
`max_queued` points wait (the network is down, say), new points spill to files under `spill_dir`
instead of blocking the caller or growing memory without bound; they are sent once the queue drains.
"""

from __future__ import annotations

import contextlib
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

log = logging.getLogger("modelog.sdk")

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
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="modelog-metrics", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the training thread's side

    def log(self, run_id: str, metrics: dict[str, float], step: int, timestamp_ms: int | None = None) -> None:
        """Queue points and return at once. Never blocks on the network."""
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

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every point queued before this call is acknowledged by the server."""
        target = self.enqueued
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self.acknowledged < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(min(0.5, remaining) if remaining is not None else 0.5)
                self._wake.set()
        return True

    def close(self, timeout: float | None = 60.0) -> bool:
        done = self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join(5)
        return done

    # ------------------------------------------------------------ the background thread

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            while self._drain_once():
                pass

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
        self._deliver(list(batches.values()))
        with self._idle:
            self.acknowledged += len(points)
            self._idle.notify_all()
        return True

    def _deliver(self, batches: list[Batch]) -> None:
        attempt = 0
        while True:
            try:
                self._send(batches)
                self.last_error = None
                return
            except Exception as exc:  # noqa: BLE001 - retried below; the caller never sees it
                self.last_error = exc
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                attempt += 1
                if attempt in (1, 10) or attempt % 50 == 0:
                    log.warning(
                        "sending %d metric batches failed (%s); retrying every %.1fs",
                        len(batches),
                        exc,
                        delay,
                    )
                if self._closed and attempt > len(self.retry_delays):
                    log.error("giving up on %d metric batches at exit: %s", len(batches), exc)
                    return
                time.sleep(delay)
