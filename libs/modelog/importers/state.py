"""The table a later import reads, and the running summary of this one."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ids (kind TEXT, source_id TEXT, modelog_id TEXT, PRIMARY KEY (kind, source_id));
CREATE TABLE IF NOT EXISTS runs (source_id TEXT PRIMARY KEY, done INTEGER NOT NULL, tags TEXT NOT NULL);
"""


class State:
    """The table a later import reads: source id -> Modelog id, and runs already complete."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript("PRAGMA journal_mode=WAL;" + _SCHEMA)
        self._lock = threading.Lock()

    def get(self, kind: str, source_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT modelog_id FROM ids WHERE kind = ? AND source_id = ?", (kind, source_id)
            ).fetchone()
        return row[0] if row else None

    def put(self, kind: str, source_id: str, modelog_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO ids VALUES (?, ?, ?)", (kind, source_id, modelog_id))

    def run_done(self, source_id: str) -> dict[str, str] | None:
        """The tags a complete run had when it was imported, or None when it must be (re)visited."""
        with self._lock:
            row = self._db.execute("SELECT done, tags FROM runs WHERE source_id = ?", (source_id,)).fetchone()
        return json.loads(row[1]) if row and row[0] else None

    def mark_run(self, source_id: str, done: bool, tags: dict[str, str]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?)", (source_id, int(done), json.dumps(tags))
            )

    def count(self, kind: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM ids WHERE kind = ?", (kind,)).fetchone()[0])

    def close(self) -> None:
        self._db.close()


def state_path(home: Path, label: str, target: str) -> Path:
    """One state table per (source, Modelog server) pair."""
    digest = hashlib.sha256(f"{label}\0{target}".encode()).hexdigest()[:16]
    return home / "imports" / f"{digest}.sqlite"


@dataclass
class Counts:
    experiments: int = 0
    runs: int = 0
    points: int = 0
    files: int = 0
    bytes: int = 0
    models: int = 0
    versions: int = 0
    skipped_runs: int = 0
    """Runs complete at an earlier import: not read again."""
    done_runs: int = 0
    """Runs this import has finished with (imported, updated or skipped)."""


@dataclass
class Summary:
    source: str
    dry_run: bool
    seen: Counts = field(default_factory=Counts)
    """What the source has (within the filters)."""
    written: Counts = field(default_factory=Counts)
    """What this import brought (0 everywhere on a second import of an unchanged source)."""
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """What Modelog has no place for, said once each (not a failure: running again changes nothing)."""
    verification: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    source_seconds: float = 0.0
    """Time spent waiting for the source (summed over workers)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "seen": vars(self.seen),
            "written": vars(self.written),
            "failures": self.failures,
            "skipped": self.skipped,
            "verification": self.verification,
            "seconds": round(self.seconds, 3),
            "source_seconds": round(self.source_seconds, 3),
            "points_per_second": round(self.written.points / self.seconds) if self.seconds else 0,
        }


Reporter = Callable[[Summary, str], None]
"""Called now and then with the running summary and the current phase (for a progress display)."""
