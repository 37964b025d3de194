"""Garbage collection of blobs no version reaches.

Reachability comes from the versions view (every version's manifest, and every blob each manifest
names); candidates come from the blob store itself, which also finds blobs whose BlobStored event a
crash lost. A collection holds the exclusive side of a PostgreSQL advisory lock, commits hold the shared
side from their blob check to their append: a blob is never deleted between "it is stored" and "a
version reaches it", in this process or any other. A blob's age counts from when it was stored or
last found by HaveBlobs (its mtime or atime, whichever is later: seal.touch), so the grace period
covers a client's HaveBlobs -> Upload -> CommitVersion round.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from eventlog import CommandPath, EventStore, Metadata
from modelog.shared.artifacts.manifest import Manifest
from modelog_platform.app import keeps_session_state

from .blobstore import BlobStore
from .domain import CollectBlobs, collection_decider, gc_stream_id
from .events import registry
from .projections import VIEWS

ABANDONED_SESSION_S = 7 * 24 * 3600
"""An upload session nobody touched for this long (and at least the grace period) is removed."""
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"modelog.artifacts.gc").digest()[:8], "big", signed=True)


class GcLock:
    """Commits share it, a collection takes it alone. Commits holding it are bounded so they never
    take every pooled connection from the appends they wait for."""

    def __init__(self, pool: asyncpg.Pool, max_commits: int = 4) -> None:
        self.pool = pool
        self._commits = asyncio.Semaphore(max_commits)

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._commits, self.pool.acquire() as conn:
            keeps_session_state(conn)
            await conn.execute("SELECT pg_advisory_lock_shared($1)", _LOCK_KEY)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock_shared($1)", _LOCK_KEY)

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self.pool.acquire() as conn:
            keeps_session_state(conn)
            await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


@dataclass
class GcReport:
    run_id: str
    dry_run: bool
    collected_blobs: int = 0
    collected_bytes: int = 0
    kept_blobs: int = 0
    kept_bytes: int = 0
    spared_blobs: int = 0
    removed_sessions: int = 0


@dataclass
class _Plan:
    collect: list[tuple[str, int]]
    kept: tuple[int, int]
    spared: int
    stale_sessions: list[str]


def _plan(blobs: BlobStore, reachable: set[str], grace_s: int) -> _Plan:
    now = time.time()
    sessions = list(blobs.sessions())
    needed = {s.digest for s in sessions if s.digest}
    stale = [s.key for s in sessions if not s.active and now - s.mtime > max(grace_s, ABANDONED_SESSION_S)]
    collect: list[tuple[str, int]] = []
    kept_n = kept_bytes = spared = 0
    for b in blobs.blobs():
        if b.digest in reachable:
            kept_n += 1
            kept_bytes += b.size
        elif b.digest in needed or now - b.mtime < grace_s:
            spared += 1
        else:
            collect.append((b.digest, b.size))
    return _Plan(collect, (kept_n, kept_bytes), spared, stale)


async def collect(
    store: EventStore,
    blobs: BlobStore,
    lock: GcLock,
    read_manifest: Callable[[str], Awaitable[Manifest]],
    grace_seconds: int,
    meta: Metadata,
    *,
    dry_run: bool = False,
) -> GcReport:
    report = GcReport(uuid.uuid4().hex, dry_run)
    async with lock.exclusive():
        digests = [r[0] for r in await store.pool.fetch(f"SELECT DISTINCT manifest FROM {VIEWS.versions}")]
        reachable = set(digests)
        for digest in digests:
            # A missing manifest raises: collecting without it would delete what it reaches.
            reachable |= (await read_manifest(digest)).blob_digests()
        plan = await asyncio.to_thread(_plan, blobs, reachable, grace_seconds)
        report.kept_blobs, report.kept_bytes = plan.kept
        report.spared_blobs = plan.spared
        report.collected_blobs = len(plan.collect)
        report.collected_bytes = sum(size for _, size in plan.collect)
        if dry_run:
            report.removed_sessions = len(plan.stale_sessions)
            return report
        if plan.collect:
            # Recorded before deleting: a crash in between leaves files the next run deletes again,
            # never a deletion the log does not show.
            await CommandPath(store, events=registry).execute(
                collection_decider,
                gc_stream_id(report.run_id),
                CollectBlobs(report.run_id, plan.collect, grace_seconds),
                meta,
            )
            await asyncio.to_thread(lambda: [blobs.delete(d) for d, _ in plan.collect])
        removed = await asyncio.to_thread(lambda: [blobs.remove_session(k) for k in plan.stale_sessions])
        report.removed_sessions = sum(removed)
    return report
