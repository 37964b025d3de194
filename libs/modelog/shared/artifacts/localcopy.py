"""Copying a file on one host while hashing the copy: how blobs move when client and server share a
file system (IngestLocal on the server, the download fast path in the SDK).

SHA-256 is the bottleneck (about 1.5 GiB/s on one core; a page-cache copy is several times faster),
so the copy is arranged to keep the hash fed and nothing else. Either way, what is hashed is exactly
what was written, so the digest vouches for the bytes kept, whatever happened to the source meanwhile:

- copy_then_hash (a destination open for reading too, as the blob store's temporary files are): the
  kernel copies 8 MiB at a time (copy_file_range: no trip through this process, extents shared on
  file systems that can), and a second thread hashes each copied range read back from the
  destination. A 1 GiB file: 0.85-1.07 s against 0.87-1.38 s for copy_hashed, 0.12 s less CPU
  (four rounds each, interleaved). Hashing through mmap instead was slower (page faults).
- copy_hashed (any destination): the calling thread reads the source into a few small buffers and
  writes each to the destination, and a second thread hashes each buffer once written (hashlib
  releases the GIL), while it is still in the CPU's cache.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import queue
import threading

BUFFER = 256 << 10
"""Bytes per read, write and hash step; BUFFERS of them fit the L2 cache with room to spare."""
BUFFERS = 4
WRITEBACK = 8 << 20
"""Dirty bytes after which their writeback is started (when asked to)."""

_SYNC_FILE_RANGE_WRITE = 2


def libc_function(name: str, *argtypes: type) -> object | None:
    """A C library function returning int (errno kept), or None where there is none (not Linux)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = getattr(libc, name)
    except (OSError, AttributeError):  # not Linux
        return None
    fn.argtypes = list(argtypes)
    fn.restype = ctypes.c_int
    found: object = fn
    return found


_SFR = libc_function("sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
_SYNCFS = libc_function("syncfs", ctypes.c_int)


def syncfs(fd: int) -> bool:
    """Flush the whole file system holding `fd` (its dirty data, then one journal commit) and wait;
    False where there is no syncfs (not Linux). Raises OSError if the kernel reports a write error."""
    if _SYNCFS is None:
        return False
    if _SYNCFS(fd) != 0:  # type: ignore[operator]
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return True


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to start writing these dirty pages to disk now, without waiting. The fsync
    that makes them durable later then finds little left to do: a batch of files written this way
    and fsynced afterwards costs about what writing them costs (one journal commit per fsync, not a
    flush of every file's data in turn), and a large blob's final fsync does not stall."""
    if _SFR is not None:
        _SFR(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # type: ignore[operator]


_scratch = threading.local()


def scratch(size: int) -> bytearray:
    """This thread's reusable buffer of at least `size` bytes. Reading each small file into a fresh
    bytes object cost page faults on every file (the allocator returns the memory between files),
    about a third of the time of copying ten thousand 100 KB files on the bench VM."""
    buf: bytearray | None = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < size:
        buf = _scratch.buf = bytearray(max(size, BUFFER))
    return buf


def read_exactly(fd: int, size: int) -> memoryview:
    """The `size` bytes of a file from its current offset, in this thread's scratch buffer (valid
    until the next call); SourceChanged if it ends sooner. A file that grew is not noticed here:
    callers compare its stat before and after, which also catches a rewrite of the same size, and
    one read call fewer per file counts when a batch holds thousands."""
    buf = memoryview(scratch(size))[:size]
    got = 0
    while got < size and (n := os.readv(fd, [buf[got:]])):
        got += n
    if got != size:
        raise SourceChanged(errno.EIO, f"changed while it was read (size {size} -> {got})")
    return buf


class SourceChanged(OSError):
    """The file being copied was modified (or truncated) while it was read."""


def copy_hashed(src: int, dst: int, size: int, *, writeback: bool = False) -> str:
    """Copy `size` bytes from the start of `src` to the start of `dst` (an empty file opened for
    writing) and return the SHA-256 of the bytes written."""
    hasher = hashlib.sha256()
    if size <= BUFFER * BUFFERS:  # too little to overlap: one thread
        buf = scratch(BUFFER)
        offset = 0
        while offset < size:
            n = _read_into(src, buf, offset, size)
            view = memoryview(buf)[:n]
            _write_all(dst, view, offset)
            hasher.update(view)
            offset += n
        if writeback:
            start_writeback(dst)
        return hasher.hexdigest()
    free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
    for _ in range(BUFFERS):
        free.put(bytearray(BUFFER))

    def hash_behind() -> None:
        while (item := full.get()) is not None:
            buf, n = item
            hasher.update(memoryview(buf)[:n])
            free.put(buf)

    thread = threading.Thread(target=hash_behind, name="copy-hash", daemon=True)
    thread.start()
    try:
        offset = flushed = 0
        while offset < size:
            buf = free.get()
            n = _read_into(src, buf, offset, size)
            _write_all(dst, memoryview(buf)[:n], offset)
            full.put((buf, n))
            offset += n
            if writeback and offset - flushed >= WRITEBACK:
                start_writeback(dst, flushed, offset - flushed)
                flushed = offset
        if writeback and offset > flushed:
            start_writeback(dst, flushed, offset - flushed)
    finally:
        full.put(None)
        thread.join()
    return hasher.hexdigest()


_NO_COPY_FILE_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)
CHUNK = 8 << 20
"""Bytes per copy_file_range step of copy_then_hash (and per writeback start)."""


def copy_then_hash(src: int, dst: int, size: int, *, writeback: bool = False) -> str | None:
    """copy_hashed for a destination opened O_RDWR: the kernel copies, a thread hashes each copied
    range read back from `dst`. None, with nothing written, where the kernel cannot copy between
    these files (the caller then uses copy_hashed)."""
    hasher = hashlib.sha256()
    copied: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
    failed: list[BaseException] = []

    def hash_behind() -> None:
        buf = bytearray(BUFFER * BUFFERS)
        try:
            while (item := copied.get()) is not None:
                offset, end = item
                while offset < end:
                    n = os.preadv(dst, [memoryview(buf)[: min(len(buf), end - offset)]], offset)
                    if n == 0:
                        raise OSError(errno.EIO, f"the copy ended at {offset} bytes, before {end}")
                    hasher.update(memoryview(buf)[:n])
                    offset += n
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            failed.append(exc)
            while copied.get() is not None:  # let the copy finish; its result is discarded
                pass

    offset = 0
    thread: threading.Thread | None = None
    try:
        while offset < size:
            start, end = offset, min(size, offset + CHUNK)
            while offset < end:
                try:
                    n = os.copy_file_range(src, dst, end - offset, offset, offset)
                except OSError as exc:
                    if offset == 0 and exc.errno in _NO_COPY_FILE_RANGE:  # nothing written yet
                        return None
                    raise
                if n == 0:
                    raise SourceChanged(errno.EIO, f"the file ended at {offset} bytes, before {size}")
                offset += n
            if writeback:
                start_writeback(dst, start, end - start)
            if thread is None:
                thread = threading.Thread(target=hash_behind, name="copy-hash", daemon=True)
                thread.start()
            copied.put((start, end))
    finally:
        if thread is not None:
            copied.put(None)
            thread.join()
    if failed:
        raise failed[0]
    return hasher.hexdigest()


def copy_plain(src: int, dst: int, size: int) -> None:
    """Copy `size` bytes from the start of `src` to the start of `dst` without reading them into
    this process: copy_file_range copies inside the kernel (or shares the extents, on file systems
    that can). For blobs whose seal vouches for their bytes (seal.py)."""
    offset = 0
    try:
        while offset < size:
            n = os.copy_file_range(src, dst, size - offset, offset, offset)
            if n == 0:
                raise SourceChanged(errno.EIO, f"the file ended at {offset} bytes, before {size}")
            offset += n
        return
    except OSError as exc:
        if isinstance(exc, SourceChanged) or exc.errno not in _NO_COPY_FILE_RANGE:
            raise
    buf = scratch(BUFFER)  # another file system (before Linux 5.19) or no copy_file_range: by hand
    while offset < size:
        n = _read_into(src, buf, offset, size)
        _write_all(dst, memoryview(buf)[:n], offset)
        offset += n


def _read_into(src: int, buf: bytearray, offset: int, size: int) -> int:
    want = min(len(buf), size - offset)
    n = os.preadv(src, [memoryview(buf)[:want]], offset)
    if n == 0:
        raise SourceChanged(errno.EIO, f"the file ended at {offset} bytes, before {size}")
    return n


def _write_all(dst: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(dst, view, offset)
        view, offset = view[written:], offset + written
