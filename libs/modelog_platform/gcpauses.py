"""Garbage-collector pauses, kept short and measured.

A full collection walks every tracked object: a started server holds about 100k of them before it
serves anything (modules, protobuf descriptors, pydantic models), and collecting those alone takes
25-40 ms on this machine, a pause every request in flight waits out. `settle()` moves what startup
made into the permanent generation (gc.freeze), so a collection walks only what serving allocates.
`Pauses` times every collection, for the histogram `modelog.gc.pause` and the line a server prints
when it stops.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field

from opentelemetry import metrics

_pause = metrics.get_meter("modelog").create_histogram(
    "modelog.gc.pause", unit="ms", description="Time the garbage collector held the process, per collection"
)


def settle() -> int:
    """Collect once, then freeze the survivors (startup's objects); returns how many were frozen.
    MODELOG_GC_FREEZE=0 leaves the heap as it is (to measure the difference)."""
    if os.environ.get("MODELOG_GC_FREEZE", "1") == "0":
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@dataclass
class Pauses:
    """Every collection's duration by generation, from gc.callbacks."""

    count: list[int] = field(default_factory=lambda: [0, 0, 0])
    longest_ms: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    total_ms: float = 0.0
    _started: float = 0.0

    def __post_init__(self) -> None:
        gc.callbacks.append(self._observe)

    def close(self) -> None:
        if self._observe in gc.callbacks:
            gc.callbacks.remove(self._observe)

    def _observe(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        ms = (time.perf_counter() - self._started) * 1000
        generation = info["generation"]
        self.count[generation] += 1
        self.longest_ms[generation] = max(self.longest_ms[generation], ms)
        self.total_ms += ms
        _pause.record(ms, {"generation": generation})

    def summary(self) -> str:
        parts = ", ".join(
            f"gen{g} {n:,} (longest {self.longest_ms[g]:.1f} ms)" for g, n in enumerate(self.count)
        )
        return f"gc pauses: {parts}; {self.total_ms:.0f} ms in all"
