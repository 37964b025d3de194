"""Copying a file on one host while hashing the copy: how blobs move when client and server share a
file system (IngestLocal on the server, the download fast path in the SDK).

The copy runs in the kernel (copy_file_range: no bytes through Python, one page-cache copy instead of
a read and a write) while a second thread hashes the copy just behind it through a small mmap window
(hashlib releases the GIL): on two cores the hash costs no extra wall time once the copy is as slow
as the hash. What is hashed is the destination, so the digest vouches for the bytes that were kept,
whatever happened to the source meanwhile.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import mmap
import os
import queue
import threading
from typing import Any

STEP = 16 << 20
"""Bytes copied per system call and hashed per mmap window (the resident cost of a copy)."""

_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> object | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):  # not Linux
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SFR = _sync_file_range()


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to start writing these dirty pages to disk now, without waiting. The fsync
    that makes them durable later then finds little left to do: a batch of files written this way
    and fsynced afterwards costs about what writing them costs (one journal commit per fsync, not a
    flush of every file's data in turn), and a large blob's final fsync does not stall."""
    if _SFR is not None:
        _SFR(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # type: ignore[operator]


class SourceChanged(OSError):
    """The file being copied was modified (or truncated) while it was read."""


def copy_hashed(src: int, dst: int, size: int, *, writeback: bool = False) -> str:
    """Copy `size` bytes from the start of `src` to the start of `dst` (an empty file opened for
    reading and writing) and return the SHA-256 of what `dst` now holds."""
    if size <= STEP:  # one window: no thread to overlap with
        _copy_range(src, dst, 0, size)
        if writeback:
            start_writeback(dst)
        digest: str = _hash_window(dst, 0, size, hashlib.sha256()).hexdigest()
        return digest
    hasher = hashlib.sha256()
    windows: queue.Queue[tuple[int, int] | None] = queue.Queue()
    failure: list[BaseException] = []

    def hash_behind() -> None:
        while (window := windows.get()) is not None:
            if failure:
                continue
            try:
                _hash_window(dst, *window, hasher)
            except BaseException as exc:  # noqa: BLE001 - handed to the copying thread
                failure.append(exc)

    thread = threading.Thread(target=hash_behind, name="copy-hash", daemon=True)
    thread.start()
    try:
        start = 0
        while start < size:
            end = min(size, start + STEP)
            _copy_range(src, dst, start, end)
            if writeback:
                start_writeback(dst, start, end - start)
            windows.put((start, end))
            start = end
    finally:
        windows.put(None)
        thread.join()
    if failure:
        raise failure[0]
    return hasher.hexdigest()


def _copy_range(src: int, dst: int, offset: int, end: int) -> None:
    kernel = True
    while offset < end:
        n = _copy(src, dst, offset, end - offset) if kernel else 0
        if n < 0:  # copy_file_range refused (another file system, an old kernel)
            kernel, n = False, 0
        if not kernel:
            n = _copy_user(src, dst, offset, end - offset)
        if n == 0:
            raise SourceChanged(errno.EIO, f"the file ended at {offset} bytes, before {end}")
        offset += n


def _hash_window(fd: int, start: int, end: int, hasher: Any) -> Any:
    if end > start:
        with mmap.mmap(fd, end - start, offset=start, prot=mmap.PROT_READ) as mm, memoryview(mm) as view:
            hasher.update(view)
    return hasher


def _copy(src: int, dst: int, offset: int, n: int) -> int:
    try:
        return os.copy_file_range(src, dst, n, offset, offset)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
            return -1
        raise


def _copy_user(src: int, dst: int, offset: int, n: int) -> int:
    data = os.pread(src, min(n, 1 << 20), offset)
    view = memoryview(data)
    at = offset
    while view:
        written = os.pwrite(dst, view, at)
        view, at = view[written:], at + written
    return len(data)
