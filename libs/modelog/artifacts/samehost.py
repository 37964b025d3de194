"""Same-host transfers: a client that shares the server's host and permissions has the server copy
its files by path (IngestLocal) and copies blobs out of the store itself."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog.errors import FailedPrecondition, ModelogError, Unauthenticated, Unavailable
from modelog.shared.artifacts.localcopy import copy_hashed, copy_plain
from modelog.shared.artifacts.manifest import Entry
from modelog.shared.artifacts.seal import seal_key, sealed

from ._base import Progress, groups
from .tree import LocalFile


@dataclass(frozen=True)
class LocalStore:
    """The server's blob store, readable from here: the client is on the server's host with its
    file permissions (it read the store's proof file). Blobs then move by kernel copies of files,
    not through gRPC (what DVC's local remote does); whoever copies hashes the copy."""

    root: Path
    proof: bytes
    seal_key: bytes

    def blob(self, digest: str) -> str:
        return f"{self.root}/sha256/{digest[:2]}/{digest[2:]}"  # a str: this runs once per file


def local_store(stub: artifacts_pb2_grpc.ArtifactsStub) -> LocalStore | None:
    """The store if this client shares the server's host and permissions, else None (stream)."""
    call = getattr(stub, "LocalStore", None)
    if call is None:
        return None
    try:
        resp = call(pb.LocalStoreRequest())
    except (Unavailable, Unauthenticated):
        raise  # no server, or not ours to use: streaming would fail the same way
    except ModelogError:  # an older server (UNIMPLEMENTED), or none of our business: stream
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
    return LocalStore(Path(resp.root), proof, seal_key(proof))


INGEST_FILES, INGEST_BYTES = 512, 64 << 20
"""Files per IngestLocal call (a few calls in flight keep both cores busy on the server)."""


def _cores(workers: int) -> int:
    return max(1, min(workers, os.cpu_count() or 1))


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
    # Two calls in flight per server core: while one call's answer travels back and the server
    # records its BlobStored events, the next is already queued for the worker process, which
    # would otherwise sit idle for that time (10-25 ms per call of 512 files on the bench VM).
    with ThreadPoolExecutor(max(1, min(2 * _cores(workers), len(files)))) as pool:
        for rest in pool.map(
            one,
            groups(
                sorted(files, key=lambda f: -f.size),
                lambda f: f.size,
                alone=INGEST_BYTES,
                files=INGEST_FILES,
                total=INGEST_BYTES,
            ),
        ):
            refused.extend(rest)
    return refused


def _copy_local(
    store: LocalStore, entry: Entry, target: Path, progress: Progress, *, verify: bool = False
) -> bool:
    """Copy one blob from the store on this host (False: it is not readable here, stream it).

    A blob still carrying the seal the store gave it when it hashed the bytes (seal.py: its mtime
    and size unchanged since, under an HMAC only the store's secret makes) is copied inside the
    kernel, unread: hashing was most of a pull's time. Any other blob, or every blob with `verify`,
    is hashed as it is copied (localcopy.copy_hashed, the hash a thread behind the copy), which is
    what catches a blob damaged or rewritten in the store; a mismatch fails the pull.
    """
    try:
        src = os.open(store.blob(entry.digest), _READ)
    except OSError:
        return False
    final = os.fspath(target)
    head, _, name = final.rpartition("/")
    tmp = f"{head}/.{name}.modelog-{os.getpid()}-{threading.get_ident()}"
    try:
        st = os.fstat(src)
        size = st.st_size
        # Created with its final mode where the umask allows it (the usual case): one call less.
        fd = os.open(tmp, _CREATE, entry.mode)
        try:
            if not (verify or size != entry.size) and sealed(src, store.seal_key, entry.digest, st):
                copy_plain(src, fd, size)
                after = os.fstat(src)
                trusted = (after.st_size, after.st_mtime_ns) == (size, st.st_mtime_ns)
            else:
                trusted = False
            if not trusted:  # unsealed, asked to verify, or rewritten while it was copied
                os.ftruncate(fd, 0)
                digest = copy_hashed(src, fd, size)
                if digest != entry.digest:
                    raise OSError(
                        f"blob {entry.digest} for {entry.path!r} is damaged in the store at "
                        f"{store.blob(entry.digest)} (its SHA-256 is {digest})"
                    )
            if entry.mode & _UMASK.value:
                os.fchmod(fd, entry.mode)
        finally:
            os.close(fd)
        os.replace(tmp, final)  # replaces a symlink at the target, never what it points to
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(src)
    progress.advance(size)
    return True


_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


class _Umask:
    """The process umask, read once (reading it means setting it, which is not thread-safe)."""

    def __init__(self) -> None:
        self._value: int | None = None
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    mask = os.umask(0o022)
                    os.umask(mask)
                    self._value = mask
        return self._value


_UMASK = _Umask()


def copy_all(
    store: LocalStore,
    items: Sequence[tuple[Entry, Path]],
    progress: Progress,
    *,
    workers: int,
    verify: bool = False,
) -> list[bool]:
    """_copy_local for each item (in manifest order), on up to `workers` threads (one per core).
    Each thread takes a run of consecutive items, so two threads rarely create files in the same
    directory: interleaved, they contended for its lock and two threads were no faster than one
    (10k files: 2.1-2.2 s either way, 1.6-1.7 s in runs). Runs are small enough to balance."""
    _UMASK.value  # noqa: B018 - read before the threads start
    threads = max(1, min(_cores(workers), len(items)))
    if threads == 1:
        return [_copy_local(store, e, t, progress, verify=verify) for e, t in items]
    step = max(1, -(-len(items) // (threads * 8)))

    def run(start: int) -> list[bool]:
        return [_copy_local(store, e, t, progress, verify=verify) for e, t in items[start : start + step]]

    with ThreadPoolExecutor(threads) as pool:
        return [done for part in pool.map(run, range(0, len(items), step)) for done in part]
