"""The SDK's metric batcher with a fake transport (pure client logic, no server)."""

from __future__ import annotations

import threading
from pathlib import Path

from modelog._batcher import Batch, MetricBatcher


class FlakySender:
    """Fails the first `failures` sends, records every attempt's idempotency keys."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts: list[list[str]] = []
        self.delivered: dict[str, Batch] = {}
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batches: list[Batch]) -> None:
        self.gate.wait()
        self.attempts.append([b.idempotency_key for b in batches])
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("UNAVAILABLE")
        for b in batches:
            self.delivered.setdefault(b.idempotency_key, b)  # the server dedupes by key

    def points(self) -> list[tuple[str, str, float, int]]:
        return sorted(
            (b.run_id, k, v, s)
            for b in self.delivered.values()
            for k, v, s in zip(b.keys, b.values, b.steps, strict=True)
        )


def test_flush_waits_until_every_point_is_acknowledged() -> None:
    sender = FlakySender()
    batcher = MetricBatcher(sender, interval=10.0)  # only flush() wakes it
    for step in range(1000):
        batcher.log("r1", {"loss": 1 / (step + 1), "acc": step / 1000}, step=step)
    assert batcher.flush(timeout=10)
    assert len(sender.points()) == 2000
    assert batcher.acknowledged == batcher.enqueued == 2000
    batcher.close()


def test_a_failed_batch_is_resent_with_the_same_idempotency_key() -> None:
    sender = FlakySender(failures=2)
    batcher = MetricBatcher(sender, interval=0.01, retry_delays=(0.01,))
    batcher.log("r1", {"x": 1.0}, step=0)
    assert batcher.flush(timeout=10)
    assert len(sender.attempts) == 3
    assert sender.attempts[0] == sender.attempts[1] == sender.attempts[2]
    assert sender.points() == [("r1", "x", 1.0, 0)]
    batcher.close()


def test_logging_never_blocks_and_spills_to_disk_when_the_queue_is_full(tmp_path: Path) -> None:
    sender = FlakySender()
    sender.gate.clear()  # the network hangs
    batcher = MetricBatcher(sender, interval=0.01, max_queued=500, max_batch=100, spill_dir=tmp_path)
    for step in range(30_000):
        batcher.log("r1", {"loss": float(step)}, step=step)  # returns although nothing is sent
    assert batcher.spilled > 0
    assert list(tmp_path.glob("spill-*.jsonl")), "points beyond the queue limit go to disk"
    sender.gate.set()  # the network is back
    assert batcher.flush(timeout=30)
    assert [p[3] for p in sender.points()] == list(range(30_000))
    assert not list(tmp_path.glob("spill-*.jsonl"))
    batcher.close()


def test_points_of_several_runs_are_batched_per_run() -> None:
    sender = FlakySender()
    batcher = MetricBatcher(sender, interval=10.0)
    batcher.log("a", {"m": 1.0}, step=1)
    batcher.log("b", {"m": 2.0}, step=1)
    batcher.log("a", {"m": 3.0}, step=2)
    batcher.flush(timeout=10)
    runs = sorted(b.run_id for b in sender.delivered.values())
    assert runs == ["a", "b"]
    assert sender.points() == [("a", "m", 1.0, 1), ("a", "m", 3.0, 2), ("b", "m", 2.0, 1)]
    batcher.close()
