"""Where blob bytes live: a small interface, and the local file system implementation.

Layout under the root (MODELOG_HOME/blobs): `sha256/ab/cdef...` holds each blob under its digest,
read-only; `uploads/<key>.part` and `<key>.json` hold an upload session's bytes and its last durable
offset. A blob reaches its real name only by a hard link from a complete, verified and fsynced session
file, so a crash never leaves a partial blob under a digest, and the link refuses to clobber.

Resuming: hashlib cannot serialise a hash's state, so a session reopened by another process re-hashes
the bytes it already holds (one sequential read of the part file); within one process the hash object
of a paused session is kept in memory and reused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import itertools
import json
import os
import secrets
import stat
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc

from eventlog.errors import InvalidArgument, ModelogError
from modelog.shared.artifacts.localcopy import (
    SourceChanged,
    copy_hashed,
    copy_then_hash,
    read_exactly,
    start_writeback,
    syncfs,
)
from modelog.shared.artifacts.seal import last_used, seal, seal_key, touch

CHECKPOINT_BYTES = 512 << 20
"""A session fsyncs and records its offset at least this often (what a crash can lose)."""
READ_CHUNK = 1 << 20
SMALL_MAX = 1 << 20
"""Blobs up to this size are uploaded into memory and stored with put(), without a session."""
_PAUSED_MAX = 256
INGEST_IN_MEMORY = 4 << 20
"""IngestLocal reads files up to this size whole; larger ones are copied through small buffers."""
SYNCFS_MIN = 64
"""New blobs settled together from this many on are made durable by two syncfs calls (the data, then
the names) instead of an fsync per file and per directory: for 10,000 small files that is about 1 s
less system time on the bench VM (2.4 s instead of 3.2 s on one thread). The cost: syncfs also
flushes whatever else is dirty on the store's file system, so a store sharing its disk with heavy
writers waits for them too."""


class SessionBusy(ModelogError):
    """Another stream is uploading the same blob right now."""

    code = grpc.StatusCode.ABORTED
    reason = "UPLOAD_IN_PROGRESS"


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int
    mtime: float


@dataclass(frozen=True)
class SessionInfo:
    key: str
    digest: str | None
    size: int
    offset: int
    mtime: float
    active: bool


class RangeReader(Protocol):
    size: int
    """Size of the whole blob."""

    def read(self, n: int) -> bytes: ...

    def close(self) -> None: ...


class UploadSession(Protocol):
    key: str
    size: int
    offset: int
    durable: int

    def write(self, offset: int, data: bytes, crc32: int) -> bool:
        """Append the bytes of `data` past the current offset; True when a checkpoint just made
        progress durable (time to acknowledge it)."""
        ...

    def complete(self) -> tuple[str, bool]:
        """Verify and store; (digest, created). False: the blob was already stored."""
        ...

    def pause(self) -> None:
        """Keep what was received for a resume, and release the session (idempotent)."""
        ...

    def discard(self) -> None:
        """Drop the session and its bytes (idempotent)."""
        ...


class BlobStore(Protocol):
    def size(self, digest: str) -> int | None:
        """The blob's size, or None when the store does not have it."""
        ...

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Those not stored; the stored ones are marked used now (garbage collection's grace)."""
        ...

    def open_range(self, digest: str, offset: int = 0, length: int | None = None) -> RangeReader: ...

    def open_session(self, size: int, digest: str | None, session_id: str | None = None) -> UploadSession:
        """Open, or resume, the upload of one blob. Raises SessionBusy if it is being uploaded."""
        ...

    def put(self, data: bytes, digest: str | None = None) -> tuple[str, bool]:
        """Store bytes held in memory (small blobs, manifests) in one step, checking `digest` if
        given; (digest, created)."""
        ...

    def put_many(self, items: Sequence[tuple[bytes, str | None]]) -> list[tuple[str, bool]]:
        """put() for several blobs at once (what an UploadBatch carries)."""
        ...

    def delete(self, digest: str) -> bool: ...

    def blobs(self) -> Iterator[BlobInfo]: ...

    def sessions(self) -> Iterator[SessionInfo]: ...

    def remove_session(self, key: str) -> bool:
        """Remove an abandoned session; False if a stream holds it."""
        ...


def session_key(digest: str | None, session_id: str | None) -> str:
    if digest:
        return f"d-{digest}"
    if not session_id:
        raise InvalidArgument.field("open.session_id", "is required when the digest is not given")
    return f"s-{session_id}"


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
        self._proof = self._load_proof()
        self.seal_key = seal_key(self._proof)
        self._shards: set[str] = set()
        self._make_shards()
        self._syncs = _GroupSync(self)
        self._paused: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()
        self._lock = threading.Lock()

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
        return _FileRange(self.path(digest), offset, length)

    def open_session(self, size: int, digest: str | None, session_id: str | None = None) -> UploadSession:
        return _FileSession(self, session_key(digest, session_id), size, digest)

    def put(self, data: bytes, digest: str | None = None) -> tuple[str, bool]:
        return self.put_many([(data, digest)])[0]

    def put_many(self, items: Sequence[tuple[bytes, str | None]]) -> list[tuple[str, bool]]:
        # Half the metadata work of a session (no state file, no lock, a rename instead of a link and
        # an unlink), and durability in batches (_Batch): what makes ten thousand small files cheap.
        out: list[tuple[str, bool]] = []
        with _Batch(self, bulk=len(items) >= SYNCFS_MIN) as batch:
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
        out: list[Ingested] = []
        # Each file's writeback starts as it is written, even in a batch that syncfs settles: in an
        # ingest worker process that is one cheap call, and the disk then writes while the next
        # files are read and hashed, so the syncfs waits less (10k files in two workers: 1.48 s
        # against 1.73 s, means of four runs). On threads sharing the GIL it cost more than it saved.
        with _Batch(self) as batch:
            for path, expected in paths:
                try:
                    out.append(self._ingest(batch, path, expected))
                except (OSError, _Refused) as exc:
                    out.append(Ingested(error=_describe(path, exc)))
        return out

    def _ingest(self, batch: _Batch, path: str, expected: str | None) -> Ingested:
        if not os.path.isabs(path):
            raise _Refused("is not an absolute path")
        src = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block
        try:
            st = os.fstat(src)
            if not stat.S_ISREG(st.st_mode):
                raise _Refused("is not a regular file")
            if st.st_size <= INGEST_IN_MEMORY:
                data = read_exactly(src, st.st_size)
                digest = hashlib.sha256(data).hexdigest()
                _unchanged(src, st)
                _expect(digest, expected)
                if batch.wants(digest):
                    batch.write(digest, data)
                    return Ingested.of(digest, st, created=True)
                return Ingested.of(digest, st, created=False)
            tmp = f"{self.writer_tmp()}/ingest.{os.getpid()}.{time.monotonic_ns()}"
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, NEW_BLOB_MODE)
            try:
                digest = copy_then_hash(src, fd, st.st_size, writeback=True) or copy_hashed(
                    src, fd, st.st_size, writeback=True
                )
                _unchanged(src, st)
                _expect(digest, expected)
                seal_read_only(fd, self.seal_key, digest)
            except BaseException:
                os.unlink(tmp)
                raise
            finally:
                os.close(fd)
            if batch.wants(digest):
                batch.adopt(digest, tmp)
                return Ingested.of(digest, st, created=True)
            os.unlink(tmp)
            return Ingested.of(digest, st, created=False)
        finally:
            os.close(src)

    def delete(self, digest: str) -> bool:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            return False
        return True

    def blobs(self) -> Iterator[BlobInfo]:
        for shard in os.scandir(self.objects):
            if not shard.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(shard.path):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # deleted since the directory was read (a collection)
                    continue
                yield BlobInfo(shard.name + entry.name, st.st_size, last_used(st))

    def sessions(self) -> Iterator[SessionInfo]:
        for entry in os.scandir(self.uploads):
            if not entry.name.endswith(".part"):
                continue
            key = entry.name[: -len(".part")]
            state = self._read_state(key)
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            yield SessionInfo(
                key,
                key[2:] if key.startswith("d-") else None,
                int(state.get("size", -1)),
                int(state.get("offset", 0)),
                st.st_mtime,
                not self._try_remove(key, remove=False),
            )

    def remove_session(self, key: str) -> bool:
        return self._try_remove(key, remove=True)

    # ------------------------------------------------------------ internals

    def _load_proof(self) -> bytes:
        """A secret only the server's user can read: a client that reads it is on this host with
        the server's privileges, so letting it name files for the server to read grants it nothing
        it did not have. Never sent over the network (only its hash is)."""
        try:
            return self.proof_path.read_bytes()
        except FileNotFoundError:
            pass
        tmp = self.tmp / f"local-proof.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, self.proof_path)
        os.unlink(tmp)
        return self.proof_path.read_bytes()

    def _sweep_tmp(self, older_than_s: float = 3600) -> None:
        """What a crash left of put(): a put lasts milliseconds, so an hour-old one is dead."""
        limit = time.time() - older_than_s
        for entry in os.scandir(self.tmp):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir(follow_symlinks=False):  # a writer's own directory (_writer_tmp)
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

    def _try_remove(self, key: str, *, remove: bool) -> bool:
        try:
            fd = os.open(self.uploads / f"{key}.part", os.O_RDONLY)
        except FileNotFoundError:
            return True
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if remove:
                for suffix in (".part", ".json"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.uploads / f"{key}{suffix}")
                with self._lock:
                    self._paused.pop(key, None)
            return True
        finally:
            os.close(fd)

    def _read_state(self, key: str) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads((self.uploads / f"{key}.json").read_bytes())
            return value
        except (FileNotFoundError, ValueError):
            return {}

    def _write_state(self, key: str, state: dict[str, object]) -> None:
        tmp = self.uploads / f"{key}.json.tmp"
        with open(tmp, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.uploads / f"{key}.json")

    def _take_paused(self, key: str, offset: int) -> hashlib._Hash | None:
        with self._lock:
            hit = self._paused.pop(key, None)
        return hit[1] if hit and hit[0] == offset else None

    def _keep_paused(self, key: str, offset: int, hasher: hashlib._Hash) -> None:
        with self._lock:
            self._paused[key] = (offset, hasher)
            while len(self._paused) > _PAUSED_MAX:
                self._paused.popitem(last=False)

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


class _Batch:
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

    def __enter__(self) -> _Batch:
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


@dataclass(frozen=True)
class Ingested:
    """One file of IngestLocal: stored (or found stored) under `digest`, or why not (`error`)."""

    digest: str = ""
    size: int = 0
    created: bool = False
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0
    error: str = ""

    @staticmethod
    def of(digest: str, st: os.stat_result, *, created: bool) -> Ingested:
        return Ingested(digest, st.st_size, created, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def row(self) -> list[object]:
        """The fields in order, for an ingest worker's answer (dataclasses.asdict took 6 µs each)."""
        return [self.digest, self.size, self.created, self.mtime_ns, self.ctime_ns, self.inode, self.error]

    @staticmethod
    def from_row(row: object) -> Ingested:
        if not isinstance(row, list) or len(row) != 7:
            raise ValueError("an ingest result must be a list of 7 fields")
        return Ingested(*row)


class _Refused(Exception):
    pass


def _describe(path: str, exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{path}: {exc.strerror}"
    return f"{path} {exc}"


def _unchanged(fd: int, before: os.stat_result) -> None:
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    ):
        raise SourceChanged(errno.EIO, "changed while it was read")


def _expect(digest: str, expected: str | None) -> None:
    if expected and digest != expected:
        raise _Refused(f"hashes to {digest}, not the {expected} given")


class _FileSession:
    def __init__(self, store: FileBlobStore, key: str, size: int, digest: str | None) -> None:
        self.store, self.key, self.size, self.digest = store, key, size, digest
        self.part = store.uploads / f"{key}.part"
        self.fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise SessionBusy(
                f"blob {digest or key} is being uploaded by another stream; retry shortly"
            ) from None
        state = store._read_state(key)
        fresh = state.get("size") != size or state.get("digest") != digest
        self.offset = 0 if fresh else min(int(state.get("offset", 0)), os.fstat(self.fd).st_size)
        os.ftruncate(self.fd, self.offset)
        os.lseek(self.fd, self.offset, os.SEEK_SET)
        self.durable = self.offset
        self.hasher = store._take_paused(key, self.offset) or self._rehash()
        self.closed = False

    def _rehash(self) -> hashlib._Hash:
        hasher = hashlib.sha256()
        done = 0
        while done < self.offset:
            data = os.pread(self.fd, min(READ_CHUNK, self.offset - done), done)
            if not data:
                raise OSError(errno.EIO, f"{self.part} is shorter than its recorded offset")
            hasher.update(data)
            done += len(data)
        return hasher

    def write(self, offset: int, data: bytes, crc32: int) -> bool:
        if zlib.crc32(data) != crc32:
            raise InvalidArgument.field(
                "chunk.crc32",
                f"the chunk at offset {offset} of blob {self.digest or self.key} is corrupt (its crc32 does "
                f"not match); nothing of it was kept: resend from offset {self.offset}",
            )
        if offset > self.offset:
            raise InvalidArgument.field(
                "chunk.offset", f"chunk at {offset} leaves a gap: the server holds {self.offset} bytes"
            )
        view = memoryview(data)[self.offset - offset :]
        if self.offset + len(view) > self.size:
            raise InvalidArgument.field(
                "chunk.data", f"chunk ends at {self.offset + len(view)}, past the declared size {self.size}"
            )
        start = self.offset
        while view:
            written = os.write(self.fd, view)
            self.hasher.update(view[:written])
            self.offset += written
            view = view[written:]
        start_writeback(self.fd, start, self.offset - start)  # the final fsync finds it on disk
        if self.offset - self.durable >= CHECKPOINT_BYTES:
            self._checkpoint()
            return True
        return False

    def _checkpoint(self) -> None:
        os.fsync(self.fd)
        self.store._write_state(self.key, {"size": self.size, "digest": self.digest, "offset": self.offset})
        self.durable = self.offset

    def complete(self) -> tuple[str, bool]:
        if self.offset != self.size:
            raise InvalidArgument.field("chunk", f"blob has {self.offset} of {self.size} bytes")
        digest = self.hasher.hexdigest()
        if self.digest and digest != self.digest:
            self.discard()
            raise InvalidArgument.field(
                "open.digest",
                f"the bytes received hash to {digest}, not {self.digest}; the upload was dropped",
            )
        try:
            seal(self.fd, self.store.seal_key, digest)  # the part file is 0600 until now
            os.fchmod(self.fd, BLOB_MODE)
            os.fsync(self.fd)
            shard = self.store._shard(digest)
            try:
                os.link(self.part, shard / digest[2:])
            except FileExistsError:
                created = False
            else:
                created = True
                _fsync_dir(shard)
        except BaseException:
            with contextlib.suppress(OSError):
                os.fchmod(self.fd, 0o600)
            self.pause()  # e.g. a full disk: keep the bytes for a retry
            raise
        self._remove_files()
        self._release()
        return digest, created

    def pause(self) -> None:
        if self.closed:
            return
        try:
            if self.offset > self.durable:
                self._checkpoint()
            self.store._keep_paused(self.key, self.offset, self.hasher)
        finally:
            self._release()

    def discard(self) -> None:
        if self.closed:
            return
        self._remove_files()
        self._release()

    def _remove_files(self) -> None:
        for path in (self.part, self.store.uploads / f"{self.key}.json"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _release(self) -> None:
        self.closed = True
        os.close(self.fd)  # closing drops the flock


class _FileRange:
    def __init__(self, path: Path, offset: int, length: int | None) -> None:
        self.fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.size = os.fstat(self.fh.fileno()).st_size
        if offset < 0 or offset > self.size:
            self.fh.close()
            raise InvalidArgument.field("offset", f"{offset} is outside the blob's {self.size} bytes")
        self.fh.seek(offset)
        self.remaining = self.size - offset if not length else min(length, self.size - offset)

    def read(self, n: int) -> bytes:
        data = self.fh.read(min(n, self.remaining))
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        self.fh.close()
