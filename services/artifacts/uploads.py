"""Resumable uploads into the file system store: `uploads/<key>.part` holds a session's bytes and
`<key>.json` its last durable offset; a flock on the part file lets one stream at a time write it.

Resuming: hashlib cannot serialise a hash's state, so a session reopened by another process re-hashes
the bytes it already holds (one sequential read of the part file); within one process the hash object
of a paused session is kept in memory and reused. A complete, verified session is handed to the store
(`StoreFile`), which puts it under its digest.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from eventlog.errors import InvalidArgument
from modelog.shared.artifacts.localcopy import start_writeback

from .blobapi import SessionBusy, SessionInfo

READ_CHUNK = 1 << 20
_PAUSED_MAX = 256

StoreFile = Callable[[int, Path, str], bool]
"""(descriptor, path, digest) of a complete, verified file -> whether the store did not have it yet."""


class UploadDir:
    """The uploads directory: the sessions' part and state files, and the hashes of paused sessions."""

    def __init__(self, path: Path, store_file: StoreFile) -> None:
        self.path = path
        self.store_file = store_file
        self._paused: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, key: str, size: int, digest: str | None, checkpoint_bytes: int) -> FileSession:
        return FileSession(self, key, size, digest, checkpoint_bytes)

    def sessions(self) -> Iterator[SessionInfo]:
        for entry in os.scandir(self.path):
            if not entry.name.endswith(".part"):
                continue
            key = entry.name[: -len(".part")]
            state = self.read_state(key)
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

    def remove(self, key: str) -> bool:
        """Remove an abandoned session; False if a stream holds it."""
        return self._try_remove(key, remove=True)

    def _try_remove(self, key: str, *, remove: bool) -> bool:
        try:
            fd = os.open(self.path / f"{key}.part", os.O_RDONLY)
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
                        os.unlink(self.path / f"{key}{suffix}")
                with self._lock:
                    self._paused.pop(key, None)
            return True
        finally:
            os.close(fd)

    def read_state(self, key: str) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads((self.path / f"{key}.json").read_bytes())
            return value
        except (FileNotFoundError, ValueError):
            return {}

    def write_state(self, key: str, state: dict[str, object]) -> None:
        tmp = self.path / f"{key}.json.tmp"
        with open(tmp, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path / f"{key}.json")

    def take_paused(self, key: str, offset: int) -> hashlib._Hash | None:
        with self._lock:
            hit = self._paused.pop(key, None)
        return hit[1] if hit and hit[0] == offset else None

    def keep_paused(self, key: str, offset: int, hasher: hashlib._Hash) -> None:
        with self._lock:
            self._paused[key] = (offset, hasher)
            while len(self._paused) > _PAUSED_MAX:
                self._paused.popitem(last=False)


class FileSession:
    """One upload session (an UploadSession): fsyncs and records its offset every `checkpoint_bytes`."""

    def __init__(
        self, uploads: UploadDir, key: str, size: int, digest: str | None, checkpoint_bytes: int
    ) -> None:
        self.uploads, self.key, self.size, self.digest = uploads, key, size, digest
        self.checkpoint_bytes = checkpoint_bytes
        self.part = uploads.path / f"{key}.part"
        self.fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise SessionBusy(
                f"blob {digest or key} is being uploaded by another stream; retry shortly"
            ) from None
        state = uploads.read_state(key)
        fresh = state.get("size") != size or state.get("digest") != digest
        self.offset = 0 if fresh else min(int(state.get("offset", 0)), os.fstat(self.fd).st_size)
        os.ftruncate(self.fd, self.offset)
        os.lseek(self.fd, self.offset, os.SEEK_SET)
        self.durable = self.offset
        self.hasher = uploads.take_paused(key, self.offset) or self._rehash()
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
        if self.offset - self.durable >= self.checkpoint_bytes:
            self._checkpoint()
            return True
        return False

    def _checkpoint(self) -> None:
        os.fsync(self.fd)
        self.uploads.write_state(self.key, {"size": self.size, "digest": self.digest, "offset": self.offset})
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
            created = self.uploads.store_file(self.fd, self.part, digest)
        except BaseException:
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
            self.uploads.keep_paused(self.key, self.offset, self.hasher)
        finally:
            self._release()

    def discard(self) -> None:
        if self.closed:
            return
        self._remove_files()
        self._release()

    def _remove_files(self) -> None:
        for path in (self.part, self.uploads.path / f"{self.key}.json"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _release(self) -> None:
        self.closed = True
        os.close(self.fd)  # closing drops the flock
