"""Where blob bytes live: the local file system store, and how it writes new blobs durably.

Layout under the root (MODELOG_HOME/blobs): `sha256/ab/cdef...` holds each blob under its digest,
read-only and sealed; `uploads/` holds the resumable upload sessions (`uploads`); `tmp/` the files
being written. A blob reaches its real name only from a complete, verified and fsynced file (a rename
from a batch, or a hard link from a session file, which refuses to clobber), so a crash never leaves a
partial blob under a digest.

The parts: the interface (`blobapi`), reading (`blobread`), resumable uploads (`uploads`) and
same-host ingest (`blobingest`); this module is the store and its writing, and re-exports the names
the rest of the service imports from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from eventlog.errors import InvalidArgument
from modelog.shared.artifacts.localcopy import start_writeback, syncfs
from modelog.shared.artifacts.seal import seal, seal_key, touch

from .blobapi import BlobInfo, BlobStore, RangeReader, SessionBusy, SessionInfo, UploadSession, session_key
from .blobingest import INGEST_IN_MEMORY, Ingested, Refused, describe, ingest_file, load_proof
from .blobread import FileRange, list_blobs
from .uploads import UploadDir

__all__ = [
    "CHECKPOINT_BYTES",
    "INGEST_IN_MEMORY",
    "SMALL_MAX",
    "SYNCFS_MIN",
    "BlobInfo",
    "BlobStore",
    "FileBlobStore",
    "Ingested",
    "RangeReader",
    "SessionBusy",
    "UploadSession",
]

CHECKPOINT_BYTES = 512 << 20
"""A session fsyncs and records its offset at least this often (what a crash can lose)."""
SMALL_MAX = 1 << 20
"""Blobs up to this size are uploaded into memory and stored with put(), without a session."""
SYNCFS_MIN = 64
"""New blobs settled together from this many on are made durable by two syncfs calls (the data, then
the names) instead of an fsync per file and per directory: for 10,000 small files that is about 1 s
less system time on the bench VM (2.4 s instead of 3.2 s on one thread). The cost: syncfs also
flushes whatever else is dirty on the store's file system, so a store sharing its disk with heavy
writers waits for them too."""


class FileBlobStore:
    """The default store: a directory on the local file system."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "sha256"
        self._objects = str(self.objects)
        self.uploads = root / "uploads"
        self.tmp = root / "tmp"
        for d in (self.uploads, self.objects, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._sweep_tmp()
        self.proof_path = root / "local-proof"
        self._proof = load_proof(self.proof_path, self.tmp)
        self.seal_key = seal_key(self._proof)
        self._shards: set[str] = set()
        self._make_shards()
        self._syncs = _GroupSync(self)
        self._uploads = UploadDir(self.uploads, self.store_file)

    def path(self, digest: str) -> Path:
        return Path(self.blob_str(digest))

    def blob_str(self, digest: str) -> str:
        """path() as a str: ingest and commit ask once per file (or twice), and a Path takes 2.5 µs
        to build against 0.2 µs for the str."""
        return f"{self._objects}/{digest[:2]}/{digest[2:]}"

    def size(self, digest: str) -> int | None:
        try:
            return os.stat(self.blob_str(digest)).st_size
        except FileNotFoundError:
            return None

    def missing(self, digests: Iterable[str]) -> list[str]:
        out = []
        for d in digests:
            try:
                touch(self.path(d))
            except FileNotFoundError:
                out.append(d)
        return out

    def open_range(self, digest: str, offset: int = 0, length: int | None = None) -> RangeReader:
        return FileRange(self.path(digest), offset, length)

    def open_session(self, size: int, digest: str | None, session_id: str | None = None) -> UploadSession:
        return self._uploads.open(session_key(digest, session_id), size, digest, CHECKPOINT_BYTES)

    def put(self, data: bytes, digest: str | None = None) -> tuple[str, bool]:
        return self.put_many([(data, digest)])[0]

    def put_many(self, items: Sequence[tuple[bytes, str | None]]) -> list[tuple[str, bool]]:
        # Half the metadata work of a session (no state file, no lock, a rename instead of a link and
        # an unlink), and durability in batches (Batch): what makes ten thousand small files cheap.
        out: list[tuple[str, bool]] = []
        with Batch(self, bulk=len(items) >= SYNCFS_MIN) as batch:
            for data, expected in items:
                digest = hashlib.sha256(data).hexdigest()
                if expected and digest != expected:
                    raise InvalidArgument.field(
                        "digest",
                        f"the bytes received hash to {digest}, not {expected}; the upload was dropped",
                    )
                if not batch.wants(digest):
                    out.append((digest, False))
                    continue
                batch.write(digest, data)
                out.append((digest, True))
        return out

    def local_info(self) -> tuple[Path, Path, str]:
        """(store root, proof file, SHA-256 of the proof) for same-host clients (IngestLocal)."""
        return self.root, self.proof_path, hashlib.sha256(self._proof).hexdigest()

    def check_proof(self, proof: bytes) -> bool:
        return hmac.compare_digest(proof, self._proof)

    def ingest_many(self, paths: Sequence[tuple[str, str | None]]) -> list[Ingested]:
        """Store files of this host read by path (IngestLocal). Each is hashed as it is copied, so the
        digest is that of the bytes kept; one that cannot be read, changes while it is read or hashes
        to another digest than expected is reported, not stored, and the others go on."""
        # Each file's writeback starts as it is written, even in a batch that syncfs settles: in an
        # ingest worker process that is one cheap call, and the disk then writes while the next
        # files are read and hashed, so the syncfs waits less (10k files in two workers: 1.48 s
        # against 1.73 s, means of four runs). On threads sharing the GIL it cost more than it saved.
        out: list[Ingested] = []
        with Batch(self) as batch:
            for path, expected in paths:
                try:
                    out.append(self._ingest(batch, path, expected))
                except (OSError, Refused) as exc:
                    out.append(Ingested(error=describe(path, exc)))
        return out

    def _ingest(self, batch: Batch, path: str, expected: str | None) -> Ingested:
        return ingest_file(batch, path, expected)

    def delete(self, digest: str) -> bool:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            return False
        return True

    def blobs(self) -> Iterator[BlobInfo]:
        return list_blobs(self.objects)

    def sessions(self) -> Iterator[SessionInfo]:
        return self._uploads.sessions()

    def remove_session(self, key: str) -> bool:
        return self._uploads.remove(key)

    def store_file(self, fd: int, path: Path, digest: str) -> bool:
        """Put a complete, verified file (an upload session's) under its digest by a hard link, sealed,
        read-only and fsynced first; False when the blob was already stored. A file that could not be
        stored is left as it was (0600), for a retry."""
        try:
            seal(fd, self.seal_key, digest)  # the part file is 0600 until now
            os.fchmod(fd, BLOB_MODE)
            os.fsync(fd)
            shard = self._shard(digest)
            try:
                os.link(path, shard / digest[2:])
            except FileExistsError:
                return False
            _fsync_dir(shard)
            return True
        except BaseException:
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o600)
            raise

    # ------------------------------------------------------------ internals

    def _sweep_tmp(self, older_than_s: float = 3600) -> None:
        """What a crash left of put(): a put lasts milliseconds, so an hour-old one is dead."""
        limit = time.time() - older_than_s
        for entry in os.scandir(self.tmp):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir(follow_symlinks=False):  # a writer's own directory (writer_tmp)
                    for inner in os.scandir(entry.path):
                        with contextlib.suppress(FileNotFoundError):
                            if inner.stat(follow_symlinks=False).st_mtime < limit:
                                os.unlink(inner.path)
                elif entry.stat(follow_symlinks=False).st_mtime < limit:
                    os.unlink(entry.path)

    def writer_tmp(self) -> str:
        """This thread's own directory for blobs being written. Two ingest threads creating their
        files in one directory contended for its lock (as two pull threads did, which halved
        their speed); renaming into the digest's shard directory afterwards is as cheap from
        here as from a shared directory."""
        path: str | None = getattr(_writer, "tmp", None)
        if path is None or not path.startswith(str(self.tmp) + "/"):
            path = f"{self.tmp}/w{os.getpid()}.{next(_writers)}"  # ingest workers share the store
            os.makedirs(path, exist_ok=True)
            _writer.tmp = path
        return path

    def _make_shards(self) -> None:
        """Create the 256 shard directories once, with one fsync: made lazily, the first upload to
        an empty store created and fsynced them one by one, about a second of a 10k-file add."""
        present = set(os.listdir(self.objects))
        missing = [f"{i:02x}" for i in range(256) if f"{i:02x}" not in present]
        for name in missing:
            os.makedirs(self.objects / name, exist_ok=True)
        if missing:
            _fsync_dir(self.objects)
        self._shards.update(f"{i:02x}" for i in range(256))

    def _shard(self, digest: str) -> Path:
        shard = self.objects / digest[:2]
        if digest[:2] not in self._shards:
            if not shard.exists():
                shard.mkdir(exist_ok=True)
                _fsync_dir(self.objects)
            self._shards.add(digest[:2])
        return shard


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


BLOB_MODE = 0o444
_ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
NEW_BLOB_MODE = BLOB_MODE if _ROOT else 0o600
"""What a blob file is created with. Linux lets only a process that may write an inode set its
user.* attributes (the seal), so a server that is not root writes and seals a blob 0600 and then
makes it read-only; root is exempt, and its blobs are read-only from the start (one call fewer per
blob, in batches of thousands)."""


def seal_read_only(fd: int, key: bytes, digest: str) -> None:
    """Seal a new blob (created NEW_BLOB_MODE) and leave it read-only."""
    seal(fd, key, digest)
    if NEW_BLOB_MODE != BLOB_MODE:
        os.fchmod(fd, BLOB_MODE)


_writer = threading.local()
_writers = itertools.count()


class Batch:
    """New blobs made durable together. Each is written to a temporary file; when the batch ends the
    files are made durable, renamed to their digests, and the renames made durable. A small batch
    starts each file's writeback at once, then fsyncs every file (by then mostly a journal commit)
    and each directory touched once, a few at a time (concurrent fsyncs share journal commits); a
    batch of SYNCFS_MIN files or more uses one syncfs before the renames and one after. A crash
    leaves at most temporary files: nothing reaches a real name before its bytes are on disk."""

    def __init__(self, store: FileBlobStore, *, bulk: bool = False) -> None:
        self.store = store
        self.bulk = bulk  # settled by syncfs: starting each file's writeback would only add system calls
        self.new: dict[str, str] = {}

    def __enter__(self) -> Batch:
        return self

    def wants(self, digest: str) -> bool:
        """False when the blob is stored (it now counts as freshly used) or already in this batch."""
        if digest in self.new:
            return False
        try:
            touch(self.store.blob_str(digest))
        except FileNotFoundError:
            return True
        return False

    def write(self, digest: str, data: bytes | memoryview) -> None:
        tmp = f"{self.store.writer_tmp()}/{digest}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, NEW_BLOB_MODE)
        self.new[digest] = tmp
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            seal_read_only(fd, self.store.seal_key, digest)
            if not self.bulk:
                start_writeback(fd)
        finally:
            os.close(fd)

    def create(self, name: str) -> tuple[str, int]:
        """A new file for a blob the caller writes itself, and its descriptor: seal it, then adopt it."""
        tmp = f"{self.store.writer_tmp()}/{name}.{os.getpid()}.{time.monotonic_ns()}"
        return tmp, os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, NEW_BLOB_MODE)

    def seal(self, fd: int, digest: str) -> None:
        seal_read_only(fd, self.store.seal_key, digest)

    def adopt(self, digest: str, tmp: str) -> None:
        """A file written (and its writeback started) by the caller."""
        self.new[digest] = tmp

    def settle(self) -> None:
        new, self.new = self.new, {}
        if new:
            self.store._syncs.settle(list(new.items()))

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None:
            self.settle()
            return
        for tmp in self.new.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.new.clear()


_SYNCS = ThreadPoolExecutor(8, thread_name_prefix="blob-fsync")


class _GroupSync:
    """Settles the batches of concurrent writers (upload streams, IngestLocal calls) together, as
    group commit does for the event log: the first to arrive leads, and batches that arrive while it
    works are settled in its next round, their directories fsynced once for all. Small upload
    batches (a few dozen files, spread over as many shard directories) otherwise fsynced about one
    directory per file, and those fsyncs were most of a 10k-file upload's server time."""

    def __init__(self, store: FileBlobStore) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.queue: list[tuple[list[tuple[str, str]], Future[None]]] = []
        self.leading = False

    def settle(self, new: list[tuple[str, str]]) -> None:
        done: Future[None] = Future()
        with self.lock:
            self.queue.append((new, done))
            lead, self.leading = not self.leading, True
        if lead:
            self._lead()
        done.result()

    def _lead(self) -> None:
        while True:
            with self.lock:
                group, self.queue = self.queue, []
                if not group:
                    self.leading = False
                    return
            try:
                self._settle([item for new, _ in group for item in new])
            except BaseException as exc:  # noqa: BLE001 - every writer of the group gets it
                for _, done in group:
                    done.set_exception(exc)
            else:
                for _, done in group:
                    done.set_result(None)

    def _settle(self, new: list[tuple[str, str]]) -> None:
        if len(new) >= SYNCFS_MIN:
            fd = os.open(self.store.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                if syncfs(fd):  # every file's data is on disk ...
                    self._rename(new)
                    syncfs(fd)  # ... before any name that points at it
                    return
            finally:
                os.close(fd)
        list(_SYNCS.map(_fsync_path, [tmp for _, tmp in new]))
        list(_SYNCS.map(_fsync_dir, self._rename(new)))

    def _rename(self, new: list[tuple[str, str]]) -> set[Path]:
        store, shards = self.store, set()
        for digest, tmp in new:
            if digest[:2] not in store._shards:
                store._shard(digest)
            os.rename(tmp, store.blob_str(digest))  # a concurrent writer's copy is the same bytes
            shards.add(digest[:2])
        return {store.objects / name for name in shards}


def _fsync_path(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
