"""Scrubbing the blob store: hash every stored blob again and compare it with its name.

A seal (seal.py) vouches that a blob has not been written since the store hashed it; it cannot see
bits rotting on the disk, a forger who rewrites a blob and puts its mtime back, or blobs stored
before seals existed. Reading every byte again can, so `modelog admin verify-store` does, and gives
intact blobs without a valid seal one when asked. A damaged blob is reported (digest, path, the
hash of what is there) and loses its seal, so that pulls hash it and fail rather than copy it
unread; its bytes and mtime stay as found: what to do with it (restore it from a backup,
re-upload it) is a person's decision, and the evidence stays.

A store may hold terabytes: blobs are read in 1 MiB chunks into one reused buffer (constant memory)
in a worker thread, the listing is held a shard (1/256 of the store) at a time, and the pages read
are dropped from the page cache behind the scrub so that it does not evict what the host uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import itertools
import os
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from modelog.shared.artifacts import seal

from .blobstore import BlobInfo, FileBlobStore

CHUNK = 1 << 20
PROGRESS_INTERVAL_S = 0.5
"""How often the stream reports progress: often enough for a progress bar, rare enough to cost
nothing next to hashing (a message per blob would be 10,000 messages for 10,000 small files)."""
MAX_LISTED = 1_000
"""Damaged blobs named in the report (the count is exact): a whole failed disk must not produce a
reply larger than a gRPC message may be (4 MiB by default; an entry takes about 400 bytes)."""
Outcome = Literal["ok", "resealed", "unsealed", "vanished"]
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block


@dataclass(frozen=True)
class DamagedBlob:
    digest: str
    path: str
    actual_sha256: str
    """Empty when the bytes could not be read through (reason says why)."""
    reason: str


@dataclass
class ScrubReport:
    """Progress so far; the counts are final when `done`. The totals come from a listing made before
    hashing: blobs stored meanwhile raise them, and when done they equal what was walked."""

    blobs_done: int = 0
    blobs_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    ok: int = 0
    resealed: int = 0
    unsealed: int = 0
    """Intact, but without a valid seal: reseal was not asked, or the file system keeps none."""
    damaged: int = 0
    vanished: int = 0
    """Deleted while the scrub ran (by garbage collection): not an error."""
    damaged_blobs: list[DamagedBlob] = field(default_factory=list)
    done: bool = False


class _Changed(Exception):
    """The blob was written to while it was read: what was hashed is not what is stored."""


class _Stopped(Exception):
    """stop() was called: the blob being read is left unjudged."""


class Scrub:
    """One pass over a store. run() blocks (call it in a worker thread); snapshot() may be called
    from any thread meanwhile; stop() ends run() within a chunk."""

    def __init__(self, store: FileBlobStore, *, reseal: bool) -> None:
        self.store = store
        self.reseal = reseal
        self.report = ScrubReport()
        self.counted = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._buf = bytearray(CHUNK)

    def snapshot(self) -> ScrubReport:
        with self._lock:
            return replace(self.report, damaged_blobs=list(self.report.damaged_blobs))

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> ScrubReport:
        """Count the blobs and bytes (for progress), then hash them all. Returns the final report."""
        blobs = size = 0
        for shard in _shards(self.store):
            blobs += len(shard)
            size += sum(b.size for b in shard)
        with self._lock:
            self.report.blobs_total, self.report.bytes_total = blobs, size
        self.counted.set()
        for shard in _shards(self.store):
            for info in shard:
                start = self.report.bytes_done
                try:
                    outcome = self._check(info)
                except _Stopped:
                    return self.snapshot()
                with self._lock:
                    r = self.report
                    r.blobs_done += 1
                    r.bytes_done = start + info.size
                    r.blobs_total = max(r.blobs_total, r.blobs_done)
                    r.bytes_total = max(r.bytes_total, r.bytes_done)
                    if isinstance(outcome, DamagedBlob):
                        r.damaged += 1
                        if len(r.damaged_blobs) < MAX_LISTED:
                            r.damaged_blobs.append(outcome)
                    else:
                        setattr(r, outcome, getattr(r, outcome) + 1)
        with self._lock:
            r = self.report
            r.blobs_total, r.bytes_total, r.done = r.blobs_done, r.bytes_done, True
        return self.snapshot()

    def _check(self, info: BlobInfo) -> Outcome | DamagedBlob:
        """One blob: "ok", "resealed", "unsealed", "vanished", or what is wrong with it."""
        path = str(self.store.path(info.digest))
        try:
            fd = os.open(path, _OPEN)
        except FileNotFoundError:
            return "vanished"
        except OSError as exc:
            why = "is a symbolic link, not a stored blob" if exc.errno == errno.ELOOP else _why(exc)
            return DamagedBlob(info.digest, path, "", why)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return DamagedBlob(info.digest, path, "", "is not a regular file")
            try:
                actual = self._hash(fd, st, info.size)
            except _Changed:
                if os.fstat(fd).st_nlink == 0:
                    return "vanished"
                return DamagedBlob(info.digest, path, "", "changed while it was read (a blob never changes)")
            except OSError as exc:  # an unreadable sector is what rot looks like too
                return DamagedBlob(info.digest, path, "", f"cannot be read: {_why(exc)}")
            if os.fstat(fd).st_nlink == 0:
                return "vanished"  # deleted while it was read: nothing stored to judge
            if actual != info.digest:
                _unseal(fd, st)
                return DamagedBlob(info.digest, path, actual, f"its bytes hash to {actual}")
            if seal.sealed(fd, self.store.seal_key, info.digest, st):
                return "ok"
            if not self.reseal:
                return "unsealed"
            return self._reseal(fd, st, info.digest, path)
        finally:
            os.close(fd)

    def _hash(self, fd: int, st: os.stat_result, listed: int) -> str:
        hasher = hashlib.sha256()
        view = memoryview(self._buf)
        base = self.report.bytes_done
        read = 0
        while n := os.readv(fd, [view]):
            hasher.update(view[:n])
            read += n
            with self._lock:
                self.report.bytes_done = base + min(read, listed)
            if self._stop.is_set():
                raise _Stopped
        if hasattr(os, "posix_fadvise"):  # Linux: the pages are not needed again; dropping them keeps
            # a scrub of terabytes from evicting what the host (the database, recent pulls) caches.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if not _same(os.fstat(fd), st) or read != st.st_size:
            raise _Changed
        return hasher.hexdigest()

    def _reseal(self, fd: int, st: os.stat_result, digest: str, path: str) -> Outcome | DamagedBlob:
        try:
            sealed = _seal(fd, self.store.seal_key, digest, st)
        except OSError:
            return "unsealed"  # not the owner, or the file system refuses: it is intact all the same
        if not _same(os.fstat(fd), st):
            # Written between the hash and the seal: the seal would vouch for bytes never hashed.
            with contextlib.suppress(OSError):
                os.removexattr(fd, seal.ATTRIBUTE)
            return DamagedBlob(digest, path, "", "changed while it was read (a blob never changes)")
        return "resealed" if sealed else "unsealed"


def _seal(fd: int, key: bytes, digest: str, st: os.stat_result) -> bool:
    """seal.seal(), also for an owner that is not root: setting a user.* attribute needs write
    permission on the inode, which a stored blob (0444) does not give. The owner lends it u+w for
    the call; the mode is not part of the seal and chmod leaves the mtime alone."""
    if seal.seal(fd, key, digest):
        return True
    if st.st_uid != os.geteuid() or st.st_mode & stat.S_IWUSR:
        return False  # refused for another reason than a read-only mode
    mode = stat.S_IMODE(st.st_mode)
    os.fchmod(fd, mode | stat.S_IWUSR)
    try:
        return seal.seal(fd, key, digest)
    finally:
        os.fchmod(fd, mode)


def _unseal(fd: int, st: os.stat_result) -> None:
    """Take a damaged blob's seal away (its bytes and mtime stay as found), so that every pull
    hashes it and fails loudly instead of copying it unread. Like _seal, an owner that is not root
    needs u+w for the call."""
    try:
        os.removexattr(fd, seal.ATTRIBUTE)
        return
    except PermissionError:
        if st.st_uid != os.geteuid():
            return
    except OSError:  # no seal to take (ENODATA), or no attributes here
        return
    mode = stat.S_IMODE(st.st_mode)
    os.fchmod(fd, mode | stat.S_IWUSR)
    try:
        with contextlib.suppress(OSError):
            os.removexattr(fd, seal.ATTRIBUTE)
    finally:
        os.fchmod(fd, mode)


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    """What a seal covers is unchanged (not ctime: marking a blob used touches it)."""
    return (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _shards(store: FileBlobStore) -> Iterator[list[BlobInfo]]:
    """The store's blobs, one shard's list at a time: the listing held in memory stays 1/256 of
    the store, and blobs stored meanwhile in shards not yet reached are scrubbed too."""
    for _, group in itertools.groupby(store.blobs(), key=lambda b: b.digest[:2]):
        yield list(group)


async def verify_store(
    store: FileBlobStore, *, reseal: bool, interval_s: float = PROGRESS_INTERVAL_S
) -> AsyncIterator[ScrubReport]:
    """Scrub `store` in a worker thread, yielding progress every `interval_s` once the blobs are
    counted, and the final report (done) last. Closing the iterator (a cancelled RPC) stops the
    scrub within a chunk."""
    scrub = Scrub(store, reseal=reseal)
    task = asyncio.ensure_future(asyncio.to_thread(scrub.run))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=interval_s)
            if scrub.counted.is_set() and not task.done():
                yield scrub.snapshot()
        yield task.result()
    finally:
        scrub.stop()
