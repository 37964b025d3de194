"""Seals: a stored blob's own record that its bytes are the ones the store hashed when it wrote them.

The store checks a blob's SHA-256 as it writes it. A same-host pull then needs to know only that the
file has not changed since, not to hash it again (hashing is most of a pull's time: 0.67 s per GiB
against 0.3 s for a kernel copy). The seal is an extended attribute holding an HMAC, keyed by the
store's secret proof, of the blob's digest, size and modification time as they were when it was
written. Writing to the file changes its mtime, so the seal no longer matches and the pull hashes
the copy as before; copying a blob file over another digest's name does not carry a valid seal
either. The store never changes a blob's mtime itself (marking a blob used sets only its atime,
see touch()). This is the trust git, DVC and our own add cache place in size and mtime, keyed so
that it cannot be forged without the store's secret; what it cannot see (bits rotting on the disk, a
forger with the server's own permissions) is what `modelog admin verify-store` and
`download(verify=True)` are for.

A file system without user extended attributes keeps no seals, and every pull hashes.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import hmac
import os
import time

from modelog.shared.artifacts.localcopy import libc_function

ATTRIBUTE = "user.modelog.seal"
_NO_XATTR = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.E2BIG, errno.ENOSPC)


def seal_key(proof: bytes) -> bytes:
    """The HMAC key for seals, derived from the store's proof (which only the server's user reads)."""
    return hashlib.sha256(b"modelog seal v1\0" + proof).digest()


def _value(key: bytes, digest: str, st: os.stat_result) -> bytes:
    return hmac.digest(key, f"{digest}\0{st.st_size}\0{st.st_mtime_ns}".encode(), "sha256")


def seal(fd: int, key: bytes, digest: str) -> bool:
    """Seal a blob whose bytes, all written through `fd`, hash to `digest`. False when the file
    system keeps no user attributes or refuses this one: the blob is stored all the same, and
    pulls hash it."""
    try:
        os.setxattr(fd, ATTRIBUTE, _value(key, digest, os.fstat(fd)))
    except OSError as exc:
        if exc.errno in _NO_XATTR:
            return False
        raise
    return True


def sealed(fd: int, key: bytes, digest: str, st: os.stat_result) -> bool:
    """True if the blob open at `fd`, whose stat is `st`, still carries the seal it got when stored."""
    try:
        value = os.getxattr(fd, ATTRIBUTE)
    except OSError:
        return False
    return hmac.compare_digest(value, _value(key, digest, st))


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_UTIMENSAT = libc_function(
    "utimensat", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec * 2), ctypes.c_int
)
_AT_FDCWD, _UTIME_NOW, _UTIME_OMIT = -100, (1 << 30) - 1, (1 << 30) - 2


def touch(path: str | os.PathLike[str]) -> None:
    """Mark a blob as used now (the collector's grace period counts from its atime or mtime,
    whichever is later) without changing its mtime, which its seal covers. FileNotFoundError if
    it is not stored."""
    if _UTIMENSAT is not None:
        times = (_Timespec * 2)(_Timespec(0, _UTIME_NOW), _Timespec(0, _UTIME_OMIT))
        if _UTIMENSAT(_AT_FDCWD, os.fsencode(path), ctypes.byref(times), 0) == 0:  # type: ignore[operator]
            return
        err = ctypes.get_errno()
        if err == errno.ENOENT:
            raise FileNotFoundError(err, os.strerror(err), str(path))
        raise OSError(err, os.strerror(err), str(path))
    st = os.stat(path)  # not Linux: two calls, a writer in between could have its mtime undone
    os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))


def last_used(st: os.stat_result) -> float:
    """When a blob was stored or last marked used (touch), in seconds since the epoch."""
    return max(st.st_mtime, st.st_atime)
