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

import grpc

from eventlog.errors import FailedPrecondition
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog_services.artifacts.localcopy import copy_hashed, copy_plain
from modelog_services.artifacts.manifest import Entry
from modelog_services.artifacts.seal import seal_key, sealed

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
    with ThreadPoolExecutor(max(1, min(_cores(workers), len(files)))) as pool:
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
        src = os.open(store.blob(entry.digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    tmp = target.with_name(f".{target.name}.modelog-{os.getpid()}-{threading.get_ident()}")
    try:
        st = os.fstat(src)
        size = st.st_size
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
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
            os.fchmod(fd, entry.mode)
        finally:
            os.close(fd)
        os.replace(tmp, target)  # replaces a symlink at the target, never what it points to
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(src)
    progress.advance(size)
    return True
