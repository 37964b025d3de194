"""Uploading what the server lacks: by path to a server on this host, else on a few Upload streams."""

from __future__ import annotations

import builtins
import hashlib
import os
import queue
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog.errors import Conflict, FailedPrecondition, ModelogError, Unavailable

from ._base import BATCH_BLOB_MAX, BATCH_BYTES, BATCH_FILES, CHUNK, WORKERS, Progress
from .samehost import LocalStore, _ingest, local_store
from .tree import LocalFile


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
        except ModelogError:
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
            except (Unavailable, Conflict):
                if attempt == 4:
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
