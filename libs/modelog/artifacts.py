"""Artifacts from Python: log a directory (a dataset, a model) as a new version, download or stream one.

    import modelog.artifacts as art
    v = art.log_artifacts("data/", name="mnist", kind="dataset", run_id=run.id)
    art.get("mnist:latest").download("restored/")
    with art.open("mnist:v3", "train.csv") as fh: ...

Hashing is skipped for files whose size, mtime, ctime and inode match what a local cache (SQLite under
MODELOG_HOME/cache) recorded, so re-adding an unchanged tree costs a directory walk. Only blobs the
server lacks are uploaded (HaveBlobs), on a few parallel streams; a large file nobody hashed yet is
hashed by the server as it arrives (one read instead of two). A server on the client's host copies the
files itself (IngestLocal) and the client copies blobs out of its store. A download never writes
outside its target directory: every manifest path is checked, no symlink in the target tree is
followed, and each file is written beside its final name and renamed over it.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import os
import queue
import shutil
import sqlite3
import stat
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

import grpc

from eventlog.errors import FailedPrecondition, InvalidArgument
from modelog._client import Connection
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog_platform.settings import Settings
from modelog_services.artifacts.domain import Ref, parse_ref
from modelog_services.artifacts.localcopy import copy_hashed
from modelog_services.artifacts.manifest import Entry, Manifest, check_path, normal_mode

CHUNK = 1 << 20
STREAM_HASH_MIN = 64 << 20
"""Files at least this large and not in the hash cache are hashed by the server as they upload."""
WORKERS = 4
BATCH_BLOB_MAX = 1 << 20
"""Files up to this size travel whole in UploadBatch messages (the server's limit for them)."""
BATCH_FILES, BATCH_BYTES = 256, 4 << 20
LOCAL_IN_MEMORY = 4 << 20
"""Blobs up to this size are copied from a same-host store with one read and one write."""
RACY_NS = 1_000_000_000
"""A file modified this close to when it was hashed may change again within one mtime tick: its cache
entry is re-checked next time (git's "racily clean" rule)."""
_END = object()


class Progress(Protocol):
    """Where long work reports itself (the CLI draws a bar; the default prints to a terminal)."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


class _TerminalProgress:
    """Silent unless stderr is a terminal and the work lasts more than a second."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.label, self.total, self.done, self.t0, self.shown = "", 0, 0, 0.0, 0.0

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.done, self.t0, self.shown = label, total, 0, time.monotonic(), 0.0

    def advance(self, n: int) -> None:
        with self.lock:
            self.done += n
            now = time.monotonic()
            if sys.stderr.isatty() and now - self.t0 > 1 and now - self.shown > 0.5:
                self.shown = now
                pct = 100 * self.done / max(1, self.total)
                print(f"\r{self.label}: {pct:5.1f}%", end="", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.shown:
            print(f"\r{self.label}: done  ", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _connected(conn: Connection | None) -> Iterator[Connection]:
    if conn is not None:
        yield conn
        return
    with Connection() as own:
        yield own


def stub(conn: Connection) -> artifacts_pb2_grpc.ArtifactsStub:
    return artifacts_pb2_grpc.ArtifactsStub(conn.channel)


# ---------------------------------------------------------------- the local tree and its hash cache


@dataclass
class LocalFile:
    path: str
    """Relative, '/'-separated: the manifest path."""
    source: str
    size: int
    mode: int
    key: tuple[int, int, int]
    """(mtime_ns, ctime_ns, inode): if any changes, the cached digest is not trusted."""
    digest: str | None = None
    real: str = ""
    """The path with symlinks resolved (the hash cache's key)."""

    def real_path(self) -> str:
        return self.real or os.path.realpath(self.source)


class HashCache:
    """Digests of local files by real path, valid while (size, mtime, ctime, inode) are unchanged."""

    def __init__(self, path: Path | None = None) -> None:
        path = path or Settings().home / "cache" / "hashes.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
            "ctime_ns INTEGER, ino INTEGER, digest TEXT, verified_ns INTEGER)"
        )
        self.lock = threading.Lock()

    def lookup(self, files: Sequence[LocalFile]) -> None:
        """Fill in the digests the cache can vouch for."""
        if not files:
            return
        reals = [f.real_path() for f in files]
        lo, hi = min(reals), max(reals)
        with self.lock:
            rows = self.db.execute(
                "SELECT path, size, mtime_ns, ctime_ns, ino, digest, verified_ns FROM files "
                "WHERE path BETWEEN ? AND ?",
                (lo, hi),
            ).fetchall()
        known = {r[0]: r[1:] for r in rows}
        for f, real in zip(files, reals, strict=True):
            hit = known.get(real)
            if hit and (hit[0], *hit[1:4]) == (f.size, *f.key) and f.key[0] < hit[5] - RACY_NS:
                f.digest = hit[4]

    def store(self, files: Sequence[LocalFile]) -> None:
        now = time.time_ns()
        rows = [(f.real_path(), f.size, *f.key, f.digest, now) for f in files if f.digest is not None]
        with self.lock, self.db:
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        self.db.close()


def _refuse(path: str, why: str) -> InvalidArgument:
    return InvalidArgument.field("path", f"{path!r} {why}")


def scan(root: Path) -> list[LocalFile]:
    """Every file under `root` (or `root` itself). Symlinks are followed while they stay inside the
    tree; one that leaves it, dangles or loops is refused, as is anything but files and directories."""
    top = os.path.realpath(root)
    st = os.stat(top)
    if stat.S_ISREG(st.st_mode):
        return [_local(root.name, str(root), st, top)]
    out: list[LocalFile] = []
    inside = top.rstrip(os.sep) + os.sep
    # (manifest path prefix, directory as reached, its real path, the directories above it)
    stack: list[tuple[str, str, str, tuple[tuple[int, int], ...]]] = [
        ("", str(root), top, ((st.st_dev, st.st_ino),))
    ]
    while stack:
        rel, directory, real_dir, ancestors = stack.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            path = f"{rel}{entry.name}"
            real = os.path.join(real_dir, entry.name)
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if real != top and not real.startswith(inside):
                    raise _refuse(path, f"is a symlink to {real}, outside the tree being added")
            try:
                est = entry.stat()
            except FileNotFoundError:
                raise _refuse(path, "is a symlink to nothing") from None
            if stat.S_ISDIR(est.st_mode):
                ident = (est.st_dev, est.st_ino)
                if ident in ancestors:
                    raise _refuse(path, "is a symlink loop (it leads to one of its own parent directories)")
                stack.append((path + "/", entry.path, real, (*ancestors, ident)))
            elif stat.S_ISREG(est.st_mode):
                out.append(_local(path, entry.path, est, real))
            else:
                raise _refuse(path, "is not a regular file or directory")
    out.sort(key=lambda f: f.path)
    return out


def _local(path: str, source: str, st: os.stat_result, real: str = "") -> LocalFile:
    key = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    return LocalFile(path, source, st.st_size, normal_mode(st.st_mode), key, real=real)


def _hash_file(f: LocalFile, progress: Progress) -> None:
    h = hashlib.sha256()
    with builtins.open(f.source, "rb", buffering=0) as fh:
        while data := fh.read(CHUNK):
            h.update(data)
            progress.advance(len(data))
    f.digest = h.hexdigest()


def hash_tree(files: Sequence[LocalFile], cache: HashCache, progress: Progress, *, stream_min: int) -> None:
    """Digests for every file below `stream_min` bytes (larger uncached ones are hashed on upload)."""
    cache.lookup(files)
    todo = [f for f in files if f.digest is None and f.size < stream_min]
    if not todo:
        return
    progress.start("hashing", sum(f.size for f in todo))
    with ThreadPoolExecutor(min(WORKERS, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda f: _hash_file(f, progress), todo))
    progress.finish()
    cache.store(todo)


def manifest_of(files: Sequence[LocalFile], *, checked: bool = False) -> Manifest:
    """The files' manifest; `checked` when check_paths() already passed for these paths."""
    entries = [Entry(f.path, f.digest or "", f.size, f.mode) for f in files]
    if checked:
        return Manifest(tuple(sorted(entries, key=lambda e: e.path)))
    return Manifest.build(entries, field_name="path")


def check_paths(files: Sequence[LocalFile]) -> None:
    """Every path rule of a manifest, before any hashing or uploading."""
    Manifest.build([Entry(f.path, "0" * 64, f.size, f.mode) for f in files], field_name="path")


# ---------------------------------------------------------------- upload


class _UploadStream:
    """One Upload stream carrying blobs from a shared work queue, one after another.

    The request generator runs in gRPC's sending thread and reads the files itself (no hand-off per
    chunk). Small files go whole, many to a message; a larger one waits for the server's offset (to
    resume it). Nothing waits for `stored`: the caller reads replies until the server ends the stream.
    """

    def __init__(
        self, stub: artifacts_pb2_grpc.ArtifactsStub, work: queue.Queue[LocalFile], progress: Progress
    ):
        self.work, self.progress = work, progress
        self.sent: dict[str, LocalFile] = {}
        self.current: LocalFile | None = None
        self.batch: list[LocalFile] = []
        self.batch_bytes = 0
        self.opened: dict[str, int] = {}
        self.stored: dict[str, pb.UploadResponse] = {}
        self.failure: BaseException | None = None
        self.ended = False
        self.cond = threading.Condition()
        self.call = stub.Upload(self._requests())

    def _requests(self) -> Iterator[pb.UploadRequest]:
        try:
            while True:
                try:
                    f = self.work.get_nowait()
                except queue.Empty:
                    break
                if f.digest and f.size <= BATCH_BLOB_MAX:
                    self.batch.append(f)
                    self.batch_bytes += f.size
                    if len(self.batch) >= BATCH_FILES or self.batch_bytes >= BATCH_BYTES:
                        yield self._flush()
                    continue
                if self.batch:
                    yield self._flush()
                self.current = f
                key = f.digest or _session_id(f)
                yield from self._blob(f, key)
                self.sent[key], self.current = f, None
            if self.batch:
                yield self._flush()
        except Exception as exc:
            self.failure = exc
            raise

    def _flush(self) -> pb.UploadRequest:
        """Small files whole, many to a message."""
        blobs = []
        for f in self.batch:
            with builtins.open(f.source, "rb", buffering=0) as fh:
                data = fh.read(f.size + 1)
            if len(data) != f.size:
                raise FailedPrecondition(
                    f"{f.source} changed while it was uploaded (size {f.size} -> {len(data)})"
                )
            blobs.append(pb.UploadBlob(digest=f.digest or "", data=data, crc32=zlib.crc32(data)))
        for f in self.batch:
            self.sent[f.digest or ""] = f
        self.progress.advance(self.batch_bytes)
        self.batch, self.batch_bytes = [], 0
        return pb.UploadRequest(batch=pb.UploadBatch(blobs=blobs))

    def _blob(self, f: LocalFile, key: str) -> Iterator[pb.UploadRequest]:
        yield pb.UploadRequest(open=pb.UploadOpen(digest=f.digest or "", size=f.size, session_id=key))
        offset = 0
        if f.size > CHUNK or f.digest is None:
            with self.cond:
                while key not in self.opened and not self.ended:
                    self.cond.wait(1.0)
            if key not in self.opened:
                return
            offset = self.opened[key]
            if key in self.stored:
                self.progress.advance(f.size)
                return
        with builtins.open(f.source, "rb", buffering=0) as fh:
            # Not hashed here: the server hashes what it receives (crc32 guards each chunk on the way)
            # and names the digest; that it is this file's holds if the file's stat is the scan's
            # from before the first byte to after the last (what the hash cache trusts, too).
            unchanged = _same_file(f, os.fstat(fh.fileno()))
            fh.seek(offset)
            self.progress.advance(offset)
            while data := fh.read(CHUNK):
                yield pb.UploadRequest(chunk=pb.UploadChunk(offset=offset, data=data, crc32=zlib.crc32(data)))
                offset += len(data)
                self.progress.advance(len(data))
            unchanged = unchanged and _same_file(f, os.fstat(fh.fileno()))
        if offset != f.size or not unchanged:
            raise FailedPrecondition(f"{f.source} changed while it was uploaded (size {f.size} -> {offset})")

    def run(self) -> None:
        """Read replies until the server has stored everything sent; raise what went wrong."""
        try:
            for r in self.call:
                key = r.session_id or r.digest
                with self.cond:
                    self.opened.setdefault(key, r.offset)
                    if r.stored:
                        self.stored[key] = r
                    self.cond.notify_all()
        except grpc.RpcError:
            if self.failure is not None:
                raise self.failure from None
            raise
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()
        if self.failure is not None:
            raise self.failure
        for key, f in self.sent.items():
            if f.digest is None:
                f.digest = self.stored[key].digest

    def unconfirmed(self) -> list[LocalFile]:
        pending = [f for k, f in self.sent.items() if k not in self.stored]
        return pending + self.batch + ([self.current] if self.current is not None else [])


def _same_file(f: LocalFile, st: os.stat_result) -> bool:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) == (f.size, *f.key)


def _session_id(f: LocalFile) -> str:
    """The same file, unchanged, resumes the same session after the client restarts."""
    ident = f"{os.path.realpath(f.source)}\0{f.size}\0{f.key}".encode()
    return hashlib.sha256(ident).hexdigest()[:32]


# ---------------------------------------------------------------- same-host transfers


@dataclass(frozen=True)
class LocalStore:
    """The server's blob store, readable from here: the client is on the server's host with its
    file permissions (it read the store's proof file). Blobs then move by kernel copies of files,
    not through gRPC (what DVC's local remote does); whoever copies hashes the copy."""

    root: Path
    proof: bytes

    def blob(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest[2:]


def local_store(stub: artifacts_pb2_grpc.ArtifactsStub) -> LocalStore | None:
    """The store if this client shares the server's host and permissions, else None (stream)."""
    call = getattr(stub, "LocalStore", None)
    if call is None:
        return None
    try:
        resp = call(pb.LocalStoreRequest())
    except grpc.RpcError:  # an older server (UNIMPLEMENTED), or none of our business: stream
        return None
    if not resp.root or not resp.proof_path:
        return None
    try:
        with builtins.open(resp.proof_path, "rb") as fh:
            proof = fh.read(4096)
    except OSError:  # another host, or another user: the proof is not readable from here
        return None
    if hashlib.sha256(proof).hexdigest() != resp.proof_sha256:
        return None  # a file of that name, but not the server's: another host
    return LocalStore(Path(resp.root), proof)


INGEST_FILES, INGEST_BYTES = 512, 64 << 20
"""Files per IngestLocal call (a few calls in flight keep both cores busy on the server)."""


def _cores(workers: int) -> int:
    return max(1, min(workers, os.cpu_count() or 1))


def _ingest_groups(files: Sequence[LocalFile]) -> list[list[LocalFile]]:
    out: list[list[LocalFile]] = []
    group: list[LocalFile] = []
    size = 0
    for f in files:
        if f.size >= INGEST_BYTES:
            out.append([f])
            continue
        group.append(f)
        size += f.size
        if len(group) >= INGEST_FILES or size >= INGEST_BYTES:
            out.append(group)
            group, size = [], 0
    if group:
        out.append(group)
    return out


def _ingest(
    stub: artifacts_pb2_grpc.ArtifactsStub,
    store: LocalStore,
    files: Sequence[LocalFile],
    progress: Progress,
    workers: int,
) -> list[LocalFile]:
    """Have the server copy these files into its store (IngestLocal); those it could not take are
    returned, to be streamed. A file whose digest was unknown gets the one the server computed, once
    its stat shows the server read the very file this client scanned."""

    def one(group: list[LocalFile]) -> list[LocalFile]:
        request = pb.IngestLocalRequest(
            proof=store.proof,
            files=[pb.LocalFile(path=f.real_path(), digest=f.digest or "") for f in group],
        )
        refused: list[LocalFile] = []
        for f, r in zip(group, stub.IngestLocal(request).files, strict=True):
            if r.error:
                refused.append(f)
                continue
            if (r.size, r.mtime_ns, r.ctime_ns, r.inode) != (f.size, *f.key):
                raise FailedPrecondition(f"{f.source} changed while it was uploaded (its stat differs)")
            f.digest = r.digest
            progress.advance(f.size)
        return refused

    refused: list[LocalFile] = []
    with ThreadPoolExecutor(max(1, min(_cores(workers), len(files)))) as pool:
        for rest in pool.map(one, _ingest_groups(sorted(files, key=lambda f: -f.size))):
            refused.extend(rest)
    return refused


def upload(
    stub: artifacts_pb2_grpc.ArtifactsStub,
    files: Sequence[LocalFile],
    progress: Progress,
    *,
    workers: int = WORKERS,
    local: bool = True,
) -> None:
    """Upload what the server lacks. Files without a digest get one (hashed as they go). With
    `local`, a server on this host copies the files itself (IngestLocal); otherwise they stream."""
    _upload(stub, files, progress, workers, local_store(stub) if local else None)


def _upload(
    stub: artifacts_pb2_grpc.ArtifactsStub,
    files: Sequence[LocalFile],
    progress: Progress,
    workers: int,
    store: LocalStore | None,
) -> None:
    known: dict[str, LocalFile] = {f.digest: f for f in files if f.digest}
    missing: set[str] = set()
    digests = list(known)
    for i in range(0, len(digests), 50_000):
        missing.update(stub.HaveBlobs(pb.HaveBlobsRequest(digests=digests[i : i + 50_000])).missing)
    todo = [known[d] for d in missing] + [f for f in files if f.digest is None]
    if not todo:
        return
    progress.start("uploading", sum(f.size for f in todo))
    if store is not None:
        todo = _ingest(stub, store, todo, progress, workers)
        if not todo:
            progress.finish()
            return
    todo.sort(key=lambda f: -f.size)
    work: queue.Queue[LocalFile] = queue.Queue()
    for f in todo:
        work.put(f)

    def worker() -> None:
        for attempt in range(5):
            stream = _UploadStream(stub, work, progress)
            try:
                stream.run()
                return
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED) or attempt == 4:
                    raise
                # What was not confirmed goes back; the next stream resumes at the server's offsets.
                for f in stream.unconfirmed():
                    work.put(f)
                time.sleep(0.2 * 2**attempt)

    n = max(1, min(workers, len(todo)))
    with ThreadPoolExecutor(n) as pool:
        for future in [pool.submit(worker) for _ in range(n)]:
            future.result()
    progress.finish()


# ---------------------------------------------------------------- versions


@dataclass
class ArtifactVersion:
    name: str
    version: int
    kind: str
    manifest_digest: str
    file_count: int
    total_size: int
    message: str = ""
    run_id: str | None = None
    parent_version: int | None = None
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    created_by: str = ""
    created_at: datetime | None = None
    created: bool = True
    """False when committing found the same content as the latest version (nothing new recorded)."""
    conn: Connection | None = field(default=None, repr=False, compare=False)
    _manifest: Manifest | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    def manifest(self) -> Manifest:
        """The version's files, checked against its digest (a server cannot swap them unnoticed)."""
        if self._manifest is None:
            with _connected(self.conn) as conn:
                resp = stub(conn).GetVersion(
                    pb.GetVersionRequest(
                        ref=pb.VersionRef(name=self.name, version=self.version), include_entries=True
                    )
                )
            entries = tuple(Entry(e.path, e.digest, e.size, e.mode) for e in resp.version.entries)
            manifest = Manifest(entries)
            if manifest.digest != self.manifest_digest:
                raise FailedPrecondition(
                    f"the files the server listed for {self.ref} do not match its manifest digest"
                )
            self._manifest = manifest
        return self._manifest

    def download(
        self,
        target: str | os.PathLike[str],
        *,
        exact: bool = False,
        progress: Progress | None = None,
        local: bool = True,
    ) -> Path:
        """Write the version's files under `target`; with `exact`, also delete files it does not have.
        With `local`, a store on this host is copied from rather than streamed (same bytes)."""
        with _connected(self.conn) as conn:
            return materialize(
                stub(conn),
                self.manifest(),
                Path(target),
                exact=exact,
                progress=progress or _TerminalProgress(),
                local=local,
            )

    def open(self, path: str, mode: str = "rb") -> IO[Any]:
        entry = self.manifest().get(check_path(path))
        if entry is None:
            raise FileNotFoundError(f"{self.ref} has no file {path!r}")
        raw = BlobReader(self.conn, entry.digest, entry.size)
        reader = io.BufferedReader(raw, CHUNK)
        return io.TextIOWrapper(reader, encoding="utf-8") if "b" not in mode else reader


def _version(v: pb.ArtifactVersion, conn: Connection | None, created: bool = True) -> ArtifactVersion:
    return ArtifactVersion(
        name=v.name,
        version=v.version,
        kind=v.kind,
        manifest_digest=v.manifest_digest,
        file_count=v.file_count,
        total_size=v.total_size,
        message=v.message,
        run_id=v.run_id or None,
        parent_version=v.parent_version or None,
        aliases=list(v.aliases),
        tags=dict(v.tags),
        created_by=v.created_by,
        created_at=v.created_at.ToDatetime(tzinfo=UTC) if v.HasField("created_at") else None,
        created=created,
        conn=conn,
    )


def _ref_pb(ref: Ref) -> pb.VersionRef:
    return pb.VersionRef(name=ref.name, version=ref.version or 0, alias=ref.alias or "")


def log_artifacts(
    path: str | os.PathLike[str],
    *,
    name: str,
    kind: str = "",
    run_id: str | None = None,
    message: str = "",
    tags: Mapping[str, str] | None = None,
    aliases: Sequence[str] = (),
    conn: Connection | None = None,
    progress: Progress | None = None,
    cache: HashCache | None = None,
    local: bool = True,
) -> ArtifactVersion:
    """Record the directory (or file) at `path` as the next version of artifact `name`. With
    `local` (the default), a server on this host copies the files itself instead of receiving them."""
    progress = progress or _TerminalProgress()
    own_cache = cache is None
    cache = cache or HashCache()
    try:
        files = scan(Path(path))
        check_paths(files)
        with _connected(conn) as c:
            client = stub(c)
            store = local_store(client) if local else None
            # A server on this host hashes what it copies: hashing here first would read twice.
            hash_tree(files, cache, progress, stream_min=0 if store else STREAM_HASH_MIN)
            fresh = [f for f in files if f.digest is None]
            _upload(client, files, progress, WORKERS, store)
            cache.store(fresh)
            manifest = manifest_of(files, checked=True)
            request = pb.CommitVersionRequest(
                name=name,
                kind=kind,
                entries=[
                    pb.ManifestEntry(path=e.path, digest=e.digest, size=e.size, mode=e.mode)
                    for e in manifest.entries
                ],
                message=message,
                run_id=run_id or "",
                tags=dict(tags or {}),
                aliases=list(aliases),
            )
            try:
                resp = client.CommitVersion(request)
            except grpc.RpcError as exc:
                # A garbage collection may have taken a blob HaveBlobs reported: upload again, once.
                if not isinstance(exc, grpc.Call) or exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                if "not stored" not in (exc.details() or ""):
                    raise
                _upload(client, files, progress, WORKERS, store)
                resp = client.CommitVersion(request)
            version = _version(resp.version, conn, resp.created)
            version._manifest = manifest
            return version
    finally:
        if own_cache:
            cache.close()


def get(ref: str, *, conn: Connection | None = None) -> ArtifactVersion:
    """`name`, `name:v3`, `name@3`, `name:latest` or `name:<alias>`."""
    parsed = parse_ref(ref)
    with _connected(conn) as c:
        resp = stub(c).GetVersion(pb.GetVersionRequest(ref=_ref_pb(parsed)))
    return _version(resp.version, conn)


def open(ref: str, path: str, mode: str = "rb", *, conn: Connection | None = None) -> IO[Any]:
    """Stream one file of a version (seekable; nothing is written to disk)."""
    return get(ref, conn=conn).open(path, mode)


def versions(name: str, *, conn: Connection | None = None) -> list[ArtifactVersion]:
    """Every version, newest first."""
    out: list[ArtifactVersion] = []
    token = ""
    with _connected(conn) as c:
        while True:
            resp = stub(c).ListVersions(pb.ListVersionsRequest(name=name, page_size=1000, page_token=token))
            out.extend(_version(v, conn) for v in resp.versions)
            token = resp.next_page_token
            if not token:
                return out


# ---------------------------------------------------------------- download


class BlobReader(io.RawIOBase):
    """A seekable, read-only view of one blob, streamed with Download byte ranges. A sequential read
    from the start to the end is checked against the digest."""

    def __init__(self, conn: Connection | None, digest: str, size: int) -> None:
        super().__init__()
        self.own = conn is None
        self.conn = conn or Connection()
        self.stub = stub(self.conn)
        self.digest, self.size, self.pos = digest, size, 0
        self.call: Any = None
        self.buffer = memoryview(b"")
        self.hasher: Any = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        new = max(0, base + offset)
        if new != self.pos:
            self._drop()
            self.hasher = None  # no longer one sequential read
            self.pos = new
        return self.pos

    def _drop(self) -> None:
        if self.call is not None:
            self.call.cancel()
        self.call, self.buffer = None, memoryview(b"")

    def readinto(self, b: Any) -> int:
        if self.pos >= self.size:
            return 0
        if not self.buffer:
            if self.call is None:
                rng = pb.ByteRange(digest=self.digest, offset=self.pos)
                self.call = self.stub.Download(pb.DownloadRequest(ranges=[rng]))
            self.buffer = memoryview(next(self.call).data)
        n = min(len(b), len(self.buffer))
        b[:n] = self.buffer[:n]
        if self.hasher is not None:
            self.hasher.update(self.buffer[:n])
        self.buffer = self.buffer[n:]
        self.pos += n
        if self.pos == self.size and self.hasher is not None and self.hasher.hexdigest() != self.digest:
            raise OSError(f"blob {self.digest} arrived corrupt (its SHA-256 does not match)")
        return n

    def close(self) -> None:
        if not self.closed:
            self._drop()
            if self.own:
                self.conn.close()
        super().close()


def _target(root: Path, rel: str, *, exact: bool) -> Path:
    """Where `rel` goes under `root`, creating parent directories but never passing through a symlink."""
    check_path(rel)
    parts = rel.split("/")
    directory = root
    for name in parts[:-1]:
        directory = directory / name
        try:
            st = os.lstat(directory)
        except FileNotFoundError:
            os.mkdir(directory)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise _refuse(
                rel, f"would be written through the symlink {directory}, which may lead outside {root}"
            )
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(directory)  # a file of the old content where the version has a directory
            os.mkdir(directory)
    target = directory / parts[-1]
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(target)
        if stat.S_ISDIR(st.st_mode):
            if not exact:
                raise FailedPrecondition(f"{target} is a directory where {rel!r} is a file (pull with exact)")
            shutil.rmtree(target)
    return target


class _Sink:
    """One file being downloaded: written beside its target, hashed, renamed over it once verified.
    A large one is written on a second thread while the receiving thread hashes the next chunk."""

    def __init__(self, entry: Entry, target: Path) -> None:
        self.entry, self.target = entry, target
        self.tmp = target.with_name(f".{target.name}.modelog-{os.getpid()}-{threading.get_ident()}")
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        self.fh = os.fdopen(fd, "wb", buffering=0)
        self.hasher = hashlib.sha256()
        self.queue: queue.Queue[bytes | None] | None = None
        self.error: BaseException | None = None
        if entry.size > 4 * CHUNK:
            self.queue = queue.Queue(maxsize=4)
            self.thread = threading.Thread(target=self._drain, daemon=True)
            self.thread.start()

    def _drain(self) -> None:
        assert self.queue is not None
        while (data := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.fh.write(data)
                except BaseException as exc:  # noqa: BLE001 - raised by write() or close()
                    self.error = exc

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.hasher.update(data)  # here, while the other thread writes the previous chunk
        if self.queue is not None:
            self.queue.put(data)
        else:
            self.fh.write(data)

    def _join(self) -> None:
        if self.queue is not None:
            self.queue.put(None)
            self.thread.join()
        self.fh.close()

    def close(self) -> None:
        try:
            self._join()
            if self.error is not None:
                raise self.error
            if self.hasher.hexdigest() != self.entry.digest:
                raise OSError(
                    f"blob {self.entry.digest} for {self.entry.path!r} arrived corrupt (SHA-256 mismatch)"
                )
            os.chmod(self.tmp, self.entry.mode)
            os.replace(self.tmp, self.target)  # replaces a symlink at the target, never what it points to
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            raise

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._join()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _fetch(
    stub: artifacts_pb2_grpc.ArtifactsStub, group: Sequence[tuple[Entry, Path]], progress: Progress
) -> None:
    """The blobs of `group` in one Download call, each into its target."""
    ranges = [pb.ByteRange(digest=e.digest) for e, _ in group]
    pending = iter(group)
    sink: _Sink | None = None
    try:
        for part in stub.Download(pb.DownloadRequest(ranges=ranges)):
            if sink is None:
                sink = _Sink(*next(pending))
            data = part.data  # upb copies a bytes field on every access
            sink.write(data)
            progress.advance(len(data))
            if part.last:
                done, sink = sink, None
                done.close()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise


def _copy_local(store: LocalStore, entry: Entry, target: Path, progress: Progress) -> bool:
    """Copy one blob from the store on this host (False: it is not readable here, stream it).

    The copy is hashed even though the store verified the bytes when it stored them: the store never
    reads them again, so this is what catches a blob damaged or tampered with since (a stored file
    can be rewritten by anyone with the server's permissions). It costs no wall time on two cores:
    the hash runs on a second thread just behind the kernel's copy (localcopy.copy_hashed), which is
    about as slow as hashing."""
    try:
        src = os.open(store.blob(entry.digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    tmp = target.with_name(f".{target.name}.modelog-{os.getpid()}-{threading.get_ident()}")
    try:
        size = os.fstat(src).st_size
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if size <= LOCAL_IN_MEMORY:
                data = os.read(src, size + 1)
                digest = hashlib.sha256(data).hexdigest()
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            else:
                digest = copy_hashed(src, fd, size)
        finally:
            os.close(fd)
        if digest != entry.digest:
            raise OSError(
                f"blob {entry.digest} for {entry.path!r} is damaged in the store at "
                f"{store.blob(entry.digest)} (its SHA-256 is {digest})"
            )
        os.chmod(tmp, entry.mode)
        os.replace(tmp, target)  # replaces a symlink at the target, never what it points to
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(src)
    progress.advance(size)
    return True


def _groups(items: Sequence[tuple[Entry, Path]]) -> list[list[tuple[Entry, Path]]]:
    """Small files many to a Download call (as uploads batch them), large ones alone."""
    out: list[list[tuple[Entry, Path]]] = []
    batch: list[tuple[Entry, Path]] = []
    size = 0
    for e, target in sorted(items, key=lambda item: -item[0].size):
        if e.size > BATCH_BLOB_MAX:
            out.append([(e, target)])
            continue
        batch.append((e, target))
        size += e.size
        if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
            out.append(batch)
            batch, size = [], 0
    if batch:
        out.append(batch)
    return out


def materialize(
    stub: artifacts_pb2_grpc.ArtifactsStub,
    manifest: Manifest,
    root: Path,
    *,
    exact: bool = False,
    progress: Progress,
    cache: HashCache | None = None,
    workers: int = WORKERS,
    local: bool = True,
) -> Path:
    """Make `root` hold the manifest's files; files already there with the right content are kept.
    With `local`, blobs of a store on this host are copied from it rather than streamed."""
    Manifest.build(manifest.entries, field_name="path")  # every path rule, before anything is written
    root.mkdir(parents=True, exist_ok=True)
    own_cache = cache is None
    cache = cache or HashCache()
    try:
        files, links = _existing(root)
        present = {f.path: f for f in files}
        cache.lookup(files)
        todo = [e for e in manifest.entries if (f := present.get(e.path)) is None or f.digest != e.digest]
        for e in manifest.entries:
            f = present.get(e.path)
            if f is not None and f.digest == e.digest and f.mode != e.mode:
                os.chmod(f.source, e.mode)
        if exact:
            wanted = {e.path for e in manifest.entries}
            for path in sorted((set(present) | set(links)) - wanted, reverse=True):
                os.unlink(root / path)  # a symlink itself, never what it points to
            _prune_empty_dirs(root, {e.path.rsplit("/", 1)[0] for e in manifest.entries if "/" in e.path})
        first: dict[str, tuple[Entry, Path]] = {}
        copies: list[tuple[Path, Path, Entry]] = []
        for e in todo:
            target = _target(root, e.path, exact=exact)
            if e.digest in first:
                copies.append((first[e.digest][1], target, e))
            else:
                first[e.digest] = (e, target)
        progress.start("downloading", sum(e.size for e, _ in first.values()))
        fetch = list(first.values())
        store = local_store(stub) if local else None
        if store is not None:
            # Copies are CPU and memory bound: more threads than cores only contend in the kernel
            # (measured: 10k files pulled in 1.9-2.4 s with 2 threads on 2 cores, 3.4 s with 4).
            with ThreadPoolExecutor(_cores(workers)) as pool:
                copied = pool.map(lambda item: _copy_local(store, item[0], item[1], progress), fetch)
                fetch = [item for item, done in zip(fetch, list(copied), strict=True) if not done]
        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(lambda group: _fetch(stub, group, progress), _groups(fetch)))
        for source, target, e in copies:
            shutil.copyfile(source, target)
            os.chmod(target, e.mode)
        progress.finish()
        written = [_local(e.path, str(root / e.path), os.stat(root / e.path)) for e in todo]
        for f, e in zip(written, todo, strict=True):
            f.digest = e.digest
        cache.store(written)
    finally:
        if own_cache:
            cache.close()
    return root


def _existing(root: Path) -> tuple[list[LocalFile], list[str]]:
    """The regular files under `root` and the symlinks there, none of them followed."""
    files: list[LocalFile] = []
    links: list[str] = []
    for directory, dirs, names in os.walk(root):
        rel = os.path.relpath(directory, root).replace(os.sep, "/")
        prefix = "" if rel == "." else rel + "/"
        for name in [*dirs, *names]:
            st = os.lstat(os.path.join(directory, name))
            if stat.S_ISLNK(st.st_mode):
                links.append(prefix + name)
            elif stat.S_ISREG(st.st_mode):
                files.append(_local(prefix + name, os.path.join(directory, name), st))
    return files, links


def _prune_empty_dirs(root: Path, keep: set[str]) -> None:
    for directory, dirs, files in os.walk(root, topdown=False):
        rel = os.path.relpath(directory, root).replace(os.sep, "/")
        if rel != "." and not dirs and not files and rel not in keep and not os.path.islink(directory):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
