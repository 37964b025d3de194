"""What the artifacts service asks of a blob store: sized reads of a range, resumable upload sessions,
one-step puts of small blobs, listings for the collector and the scrubber. `FileBlobStore`
(`blobstore`) is the implementation; the service and the transfers depend only on these protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from eventlog.errors import InvalidArgument, ModelogError


class SessionBusy(ModelogError):
    """Another stream is uploading the same blob right now."""

    code = grpc.StatusCode.ABORTED
    reason = "UPLOAD_IN_PROGRESS"


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int
    mtime: float


@dataclass(frozen=True)
class SessionInfo:
    key: str
    digest: str | None
    size: int
    offset: int
    mtime: float
    active: bool


class RangeReader(Protocol):
    size: int
    """Size of the whole blob."""

    def read(self, n: int) -> bytes: ...

    def close(self) -> None: ...


class UploadSession(Protocol):
    key: str
    size: int
    offset: int
    durable: int

    def write(self, offset: int, data: bytes, crc32: int) -> bool:
        """Append the bytes of `data` past the current offset; True when a checkpoint just made
        progress durable (time to acknowledge it)."""
        ...

    def complete(self) -> tuple[str, bool]:
        """Verify and store; (digest, created). False: the blob was already stored."""
        ...

    def pause(self) -> None:
        """Keep what was received for a resume, and release the session (idempotent)."""
        ...

    def discard(self) -> None:
        """Drop the session and its bytes (idempotent)."""
        ...


class BlobStore(Protocol):
    def size(self, digest: str) -> int | None:
        """The blob's size, or None when the store does not have it."""
        ...

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Those not stored; the stored ones are marked used now (garbage collection's grace)."""
        ...

    def open_range(self, digest: str, offset: int = 0, length: int | None = None) -> RangeReader: ...

    def open_session(self, size: int, digest: str | None, session_id: str | None = None) -> UploadSession:
        """Open, or resume, the upload of one blob. Raises SessionBusy if it is being uploaded."""
        ...

    def put(self, data: bytes, digest: str | None = None) -> tuple[str, bool]:
        """Store bytes held in memory (small blobs, manifests) in one step, checking `digest` if
        given; (digest, created)."""
        ...

    def put_many(self, items: Sequence[tuple[bytes, str | None]]) -> list[tuple[str, bool]]:
        """put() for several blobs at once (what an UploadBatch carries)."""
        ...

    def delete(self, digest: str) -> bool: ...

    def blobs(self) -> Iterator[BlobInfo]: ...

    def sessions(self) -> Iterator[SessionInfo]: ...

    def remove_session(self, key: str) -> bool:
        """Remove an abandoned session; False if a stream holds it."""
        ...


def session_key(digest: str | None, session_id: str | None) -> str:
    if digest:
        return f"d-{digest}"
    if not session_id:
        raise InvalidArgument.field("open.session_id", "is required when the digest is not given")
    return f"s-{session_id}"
