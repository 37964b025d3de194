"""Storing files of the server's own host, read by path (IngestLocal), and the proof that lets a client
ask for it. Each file is hashed as it is copied, so the digest is that of the bytes kept; a file that
cannot be read, changes while it is read or hashes to another digest than expected is reported, not
stored.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelog.shared.artifacts.localcopy import SourceChanged, copy_hashed, copy_then_hash, read_exactly

if TYPE_CHECKING:
    from .blobstore import Batch

INGEST_IN_MEMORY = 4 << 20
"""IngestLocal reads files up to this size whole; larger ones are copied through small buffers."""


def load_proof(proof_path: Path, tmp: Path) -> bytes:
    """A secret only the server's user can read: a client that reads it is on this host with
    the server's privileges, so letting it name files for the server to read grants it nothing
    it did not have. Never sent over the network (only its hash is)."""
    try:
        return proof_path.read_bytes()
    except FileNotFoundError:
        pass
    made = tmp / f"local-proof.{os.getpid()}"
    fd = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
        os.link(made, proof_path)
    os.unlink(made)
    return proof_path.read_bytes()


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


class Refused(Exception):
    """Why a file is not stored, when the operating system did not say (an OSError)."""


def describe(path: str, exc: BaseException) -> str:
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
        raise Refused(f"hashes to {digest}, not the {expected} given")


def ingest_file(batch: Batch, path: str, expected: str | None) -> Ingested:
    """Store one file into `batch`; raises OSError or Refused when it cannot be stored (see describe)."""
    if not os.path.isabs(path):
        raise Refused("is not an absolute path")
    src = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("is not a regular file")
        if st.st_size <= INGEST_IN_MEMORY:
            data = read_exactly(src, st.st_size)
            digest = hashlib.sha256(data).hexdigest()
            _unchanged(src, st)
            _expect(digest, expected)
            if batch.wants(digest):
                batch.write(digest, data)
                return Ingested.of(digest, st, created=True)
            return Ingested.of(digest, st, created=False)
        tmp, fd = batch.create("ingest")
        try:
            digest = copy_then_hash(src, fd, st.st_size, writeback=True) or copy_hashed(
                src, fd, st.st_size, writeback=True
            )
            _unchanged(src, st)
            _expect(digest, expected)
            batch.seal(fd, digest)
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
