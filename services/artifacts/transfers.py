"""Upload and Download streams: chunks in, chunks out, constant memory whatever the blob size.

File work (crc32, SHA-256, writes, reads) runs in order on each stream's own thread, which hashlib,
zlib and file I/O release the GIL for, a bounded number of chunks ahead of (or behind) the event loop:
receiving the next chunk overlaps hashing and writing this one. Small blobs travel many to a message
and are stored together; their BlobStored appends are coalesced (service.BlobRecorder).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from eventlog import InvalidArgument, NotFound
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog.shared.artifacts.manifest import check_digest

from .blobstore import SMALL_MAX, BlobStore, RangeReader, UploadSession

CHUNK = 1 << 20
MAX_CHUNK = 8 << 20
MAX_RANGES = 10_000
MAX_BATCH = 8 << 20
BATCHES_AHEAD = 2
MAX_IN_FLIGHT = 256
"""Blobs of one stream stored (or being stored) but not yet acknowledged."""
WRITE_AHEAD = 4
READ_AHEAD = 2
_SESSION_ID = re.compile(r"^[0-9a-f]{32}\Z")

T = TypeVar("T")
RecordBlob = Callable[[str, int], Awaitable[None]]


class _Uploader:
    """One Upload stream. File work runs in order on the stream's own thread; up to WRITE_AHEAD chunk
    writes wait there while the event loop receives the next chunks (a round trip to a thread pool
    per chunk would leave the loop idle half the time)."""

    def __init__(self, blobs: BlobStore, record: RecordBlob, out: asyncio.Queue[object]) -> None:
        self.blobs, self.record, self.out = blobs, record, out
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="upload")
        self.session: UploadSession | None = None
        self.small: bytearray | None = None
        """The bytes so far of a small blob, stored with one put() when complete (no session)."""
        self.small_size = 0
        self.received = 0
        """Where this blob's bytes will end once the queued writes are done."""
        self.writes: deque[asyncio.Future[bool]] = deque()
        self.puts: deque[asyncio.Future[Any]] = deque()
        """Stores of small blobs still holding their bytes (bounded: memory stays constant)."""
        self.label = ("", "")
        self.skipping = False
        self.pending: set[asyncio.Task[None]] = set()
        self.opening: asyncio.Future[UploadSession] | None = None

    async def run(self, requests: AsyncIterator[pb.UploadRequest]) -> None:
        try:
            async for req in requests:
                if req.HasField("open"):
                    await self._open(req.open)
                elif req.HasField("chunk"):
                    await self._chunk(req.chunk)
                elif req.HasField("batch"):
                    await self._batch(req.batch)
            await self._drain(0)
            await self._settle()
            self.out.put_nowait(None)
        except BaseException as exc:
            await self._settle()
            self.out.put_nowait(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _io(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _settle(self) -> None:
        """Finish queued file work and BlobStored appends, and keep an incomplete blob for a resume.
        Appends are never cancelled: their events may already be in a committing batch."""
        # Off the event loop (a batch of small blobs fsyncs each), but waited for even when cancelled:
        # a session must not be paused under a thread that still writes to it.
        done = asyncio.ensure_future(asyncio.to_thread(self.executor.shutdown, True))
        while not done.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([done])
        for write in self.writes:  # the stream already failed: these outcomes are moot
            write.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.writes.clear()
        opening = self.opening
        while opening is not None and not opening.done():  # its thread is done; its result on the way
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([opening])
        # Opened just as the stream was cancelled: release it (a no-op once completed or paused).
        opened = None if opening is None or opening.cancelled() or opening.exception() else opening.result()
        if opened is not None and opened is not self.session:
            opened.pause()
        while self.pending:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait(list(self.pending))
        if self.session is not None:
            session, self.session = self.session, None
            await asyncio.to_thread(session.pause)

    def _reply(self, offset: int, *, stored: bool = False, existed: bool = False, digest: str = "") -> None:
        self.out.put_nowait(
            pb.UploadResponse(
                digest=digest or self.label[0],
                session_id=self.label[1],
                offset=offset,
                stored=stored,
                existed=existed,
            )
        )

    async def _open(self, req: pb.UploadOpen) -> None:
        if self.session is not None or self.small is not None:
            raise InvalidArgument.field(
                "open",
                f"blob {self.label[0] or self.label[1]} is incomplete; send the rest before opening another",
            )
        if req.size < 0:
            raise InvalidArgument.field("open.size", "must be >= 0")
        digest = check_digest(req.digest, "open.digest") if req.digest else ""
        session_id = "" if digest else req.session_id
        if not digest and not _SESSION_ID.match(session_id):
            raise InvalidArgument.field(
                "open.session_id", "32 lower-case hex characters, required without a digest"
            )
        self.label = (digest, session_id)
        self.skipping = False
        if digest and req.size <= SMALL_MAX:  # put() finds a copy already stored
            self.small, self.small_size = bytearray(), req.size
            self._reply(0)
            if req.size == 0:
                await self._complete_small()
            return
        if digest and not await self._io(self.blobs.missing, [digest]):
            size = await self._io(self.blobs.size, digest)
            if size is not None:
                self.skipping = True  # chunks the client already sent for it are dropped
                self._reply(size, stored=True, existed=True)
                return
        self.opening = self._io(self.blobs.open_session, req.size, digest or None, session_id)
        self.session = await asyncio.shield(self.opening)
        self.received = self.session.offset
        self._reply(self.session.offset)
        if self.session.offset == self.session.size:
            await self._complete()

    async def _drain(self, keep: int) -> None:
        """Wait for queued writes until `keep` remain; acknowledge progress a checkpoint made durable."""
        while len(self.writes) > keep:
            if await self.writes.popleft() and self.session is not None:
                self._reply(self.session.durable)

    async def _chunk(self, chunk: pb.UploadChunk) -> None:
        if self.skipping:
            return
        session = self.session
        if session is None and self.small is None:
            raise InvalidArgument.field("chunk", "a chunk must follow an open")
        data = chunk.data  # upb copies a bytes field on every access: read it once
        if len(data) > MAX_CHUNK:
            raise InvalidArgument.field("chunk.data", f"chunks are at most {MAX_CHUNK} bytes")
        if self.small is not None:
            await self._small_chunk(chunk.offset, data, chunk.crc32)
            return
        assert session is not None
        self.writes.append(self._io(session.write, chunk.offset, data, chunk.crc32))
        if chunk.offset > self.received:
            await self._drain(0)  # the write refuses the gap: raise that
        self.received = max(self.received, chunk.offset + len(data))
        await self._drain(WRITE_AHEAD if self.received < session.size else 0)
        if session.offset == session.size:
            await self._complete()

    async def _small_chunk(self, offset: int, data: bytes, crc32: int) -> None:
        assert self.small is not None
        held = len(self.small)
        if zlib.crc32(data) != crc32:
            raise InvalidArgument.field(
                "chunk.crc32",
                f"the chunk at offset {offset} of blob {self.label[0]} is corrupt (its crc32 does not "
                f"match); nothing of it was kept: resend from offset {held}",
            )
        if offset > held:
            raise InvalidArgument.field(
                "chunk.offset", f"chunk at {offset} leaves a gap: the server holds {held} bytes"
            )
        self.small += memoryview(data)[held - offset :]
        if len(self.small) > self.small_size:
            raise InvalidArgument.field("chunk.data", f"the chunks pass the declared size {self.small_size}")
        if len(self.small) == self.small_size:
            await self._complete_small()

    async def _complete_small(self) -> None:
        """Store it on the stream's thread while the loop receives the next blobs; at most
        WRITE_AHEAD of them wait there with their bytes."""
        assert self.small is not None
        size, label = len(self.small), self.label
        stored = self._io(self.blobs.put, bytes(self.small), label[0])
        self.small = None
        self.puts.append(stored)

        async def finish() -> None:
            digest, created = await stored
            await self._stored(digest, size, created, label[1])

        self._track(asyncio.create_task(finish()))
        while len(self.puts) > WRITE_AHEAD:
            await asyncio.wait([self.puts.popleft()])  # its error, if any, comes through finish()
        while len(self.pending) > MAX_IN_FLIGHT:
            await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)

    async def _batch(self, batch: pb.UploadBatch) -> None:
        if self.session is not None or self.small is not None:
            raise InvalidArgument.field(
                "batch", "the blob opened before it is incomplete; send the rest first"
            )
        items: list[tuple[bytes, str, int]] = []
        total = 0
        for i, blob in enumerate(batch.blobs):
            data = blob.data
            total += len(data)
            if len(data) > SMALL_MAX or total > MAX_BATCH:
                raise InvalidArgument.field(
                    f"batch.blobs[{i}]",
                    f"a batch holds blobs of at most {SMALL_MAX} bytes, {MAX_BATCH} in all",
                )
            items.append((data, check_digest(blob.digest, f"batch.blobs[{i}].digest"), blob.crc32))
        stored = self._io(_store_batch, self.blobs, items)
        self.puts.append(stored)
        sizes = [len(data) for data, _, _ in items]
        del items

        async def finish() -> None:
            results = await stored
            await asyncio.gather(
                *(self._stored(d, n, created, "") for (d, created), n in zip(results, sizes, strict=True))
            )

        self._track(asyncio.create_task(finish()))
        while len(self.puts) > BATCHES_AHEAD:
            await asyncio.wait([self.puts.popleft()])

    async def _complete(self) -> None:
        assert self.session is not None
        session, self.session = self.session, None
        digest, created = await self._io(session.complete)
        self._track(asyncio.create_task(self._stored(digest, session.size, created, self.label[1])))

    async def _stored(self, digest: str, size: int, created: bool, session_id: str) -> None:
        if created:
            await self.record(digest, size)
        reply = pb.UploadResponse(
            digest=digest, session_id=session_id, offset=size, stored=True, existed=not created
        )
        self.out.put_nowait(reply)

    def _track(self, task: asyncio.Task[None]) -> None:
        self.pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.out.put_nowait(task.exception())


def _store_batch(blobs: BlobStore, items: list[tuple[bytes, str, int]]) -> list[tuple[str, bool]]:
    for i, (data, digest, crc) in enumerate(items):
        if zlib.crc32(data) != crc:
            raise InvalidArgument.field(
                f"batch.blobs[{i}].crc32",
                f"blob {digest} is corrupt (its crc32 does not match); send it again",
            )
    return blobs.put_many([(data, digest) for data, digest, _ in items])


async def upload(
    blobs: BlobStore, record: RecordBlob, requests: AsyncIterator[pb.UploadRequest]
) -> AsyncIterator[pb.UploadResponse]:
    out: asyncio.Queue[object] = asyncio.Queue()
    uploader = _Uploader(blobs, record, out)
    task = asyncio.create_task(uploader.run(requests))
    try:
        while (item := await out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, pb.UploadResponse)
            yield item
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _begin(
    blobs: BlobStore, digest: str, offset: int, length: int | None
) -> tuple[RangeReader | None, int, bytes]:
    """Open a range: (reader, blob size, b""), or for one that fits in a chunk (None, size, its bytes),
    read and closed in the same trip to the thread."""
    reader = blobs.open_range(digest, offset, length)
    end = reader.size if length is None else min(reader.size, offset + length)
    if end - offset > CHUNK:
        return reader, reader.size, b""
    try:
        return None, reader.size, reader.read(CHUNK)
    finally:
        reader.close()


async def download(blobs: BlobStore, request: pb.DownloadRequest) -> AsyncIterator[pb.DownloadResponse]:
    if len(request.ranges) > MAX_RANGES:
        raise InvalidArgument.field("ranges", f"at most {MAX_RANGES} ranges per call")
    for i, r in enumerate(request.ranges):
        check_digest(r.digest, f"ranges[{i}].digest")
        if r.offset < 0 or r.length < 0:
            raise InvalidArgument.field(f"ranges[{i}]", "offset and length must be >= 0")
    loop = asyncio.get_running_loop()
    # Reads run READ_AHEAD chunks ahead on the stream's own thread, in order, while the loop sends.
    with ThreadPoolExecutor(1, thread_name_prefix="download") as pool:
        for r in request.ranges:
            try:
                begun = await loop.run_in_executor(pool, _begin, blobs, r.digest, r.offset, r.length or None)
            except FileNotFoundError:
                raise NotFound(f"blob {r.digest} is not stored") from None
            reader, size, whole = begun
            if reader is None:
                yield pb.DownloadResponse(digest=r.digest, offset=r.offset, data=whole, size=size, last=True)
                continue
            try:
                end = reader.size if not r.length else min(reader.size, r.offset + r.length)
                reads: deque[tuple[int, asyncio.Future[bytes]]] = deque()
                ahead = r.offset
                while ahead < end or reads:
                    while ahead < end and len(reads) < READ_AHEAD:
                        n = min(CHUNK, end - ahead)
                        reads.append((ahead, loop.run_in_executor(pool, reader.read, n)))
                        ahead += n
                    offset, pending = reads.popleft()
                    data = await pending
                    if len(data) != min(CHUNK, end - offset):
                        raise OSError(f"blob {r.digest} is shorter than its size: the store is damaged")
                    yield pb.DownloadResponse(
                        digest=r.digest, offset=offset, data=data, size=reader.size, last=not reads
                    )
            finally:
                pool.submit(reader.close)  # after the reads still queued
