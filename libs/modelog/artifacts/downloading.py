"""Downloading: a version's files into a directory (never outside it), or one blob as a stream."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import shutil
import stat
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelog._client import Connection
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog.errors import FailedPrecondition
from modelog.shared.artifacts.manifest import Entry, Manifest, check_path

from ._base import (
    BATCH_BLOB_MAX,
    BATCH_BYTES,
    BATCH_FILES,
    CHUNK,
    WORKERS,
    Progress,
    groups,
    stub,
)
from .samehost import copy_all, local_store
from .tree import HashCache, LocalFile, _local, _refuse


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


def _target(root: Path, rel: str, *, exact: bool, checked: set[Path] | None = None) -> Path:
    """Where `rel` goes under `root`, creating parent directories but never passing through a symlink.
    Directories in `checked` were checked (or made) by this pull already, and are added to it."""
    check_path(rel)
    parts = rel.split("/")
    directory = root
    for name in parts[:-1]:
        directory = directory / name
        if checked is not None:
            if directory in checked:
                continue
            checked.add(directory)
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


def _groups(items: Sequence[tuple[Entry, Path]]) -> list[list[tuple[Entry, Path]]]:
    """Small files many to a Download call (as uploads batch them), large ones alone."""
    return groups(
        sorted(items, key=lambda item: -item[0].size),
        lambda item: item[0].size,
        alone=BATCH_BLOB_MAX + 1,
        files=BATCH_FILES,
        total=BATCH_BYTES,
    )


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
    verify: bool = False,
) -> Path:
    """Make `root` hold the manifest's files; files already there with the right content are kept.
    With `local`, blobs of a store on this host are copied from it rather than streamed; `verify`
    hashes even those whose seal vouches for them (streamed bytes are always hashed)."""
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
        checked: set[Path] = set()
        for e in todo:
            target = _target(root, e.path, exact=exact, checked=checked)
            if e.digest in first:
                copies.append((first[e.digest][1], target, e))
            else:
                first[e.digest] = (e, target)
        progress.start("downloading", sum(e.size for e, _ in first.values()))
        fetch = list(first.values())
        store = local_store(stub) if local else None
        if store is not None:
            copied = copy_all(store, fetch, progress, workers=workers, verify=verify)
            fetch = [item for item, done in zip(fetch, copied, strict=True) if not done]
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
