"""The artifacts behind MLflow's runs and logged models, kept by our Artifacts service over gRPC.

- **One artifact per run or logged model.** A run's files are the artifact `run-<run_id>` (kind other,
  in its experiment's project, run_id set); a logged model's are `model-<model_id>` (kind model, made
  by models.py), under `artifacts/` beside the model's metadata. A PUT stores the body as one blob,
  streamed (the server hashes while it arrives; memory stays constant at any size) and commits a
  version: the latest manifest plus the file. A DELETE commits one without the path or what is under
  it. Every change is a version with its actor, so a run's files have history and time travel.
- **Concurrent writers.** CommitVersion records `parent_version` without refusing a stale one (a
  version may be made from any earlier one: a revert), so this read-modify-commit guards itself. Its
  idempotency key names the version it starts from: of two gateway commits from one version the second
  replays the first's result, finds a manifest that is not its own, re-reads and tries again. A version
  another client made meanwhile (without such a key) shows as a gap in the numbers; the change is then
  applied again on top of it. Writers of one artifact in one process queue on a lock rather than spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tempfile
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from eventlog.errors import InvalidArgument, ModelogError, NotFound, Unavailable
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog.shared.artifacts.manifest import Entry, Manifest
from modelog_services.gateway.upstream import Caller, Upstream, from_rpc

CHUNK = 4 << 20
"""Upload chunks: the service takes up to 8 MiB; 4 MiB pays its per-chunk work (crc32 check,
writeback hint, a thread hop) a quarter as often as 1 MiB, in the same constant memory."""
SMALL = 1 << 20
"""Bodies up to this size are sent whole in one UploadBatch (the service's limit for one)."""
MODE = 0o644
COMMIT_ATTEMPTS = 16
CACHED_ENTRIES = 500_000


@dataclass(frozen=True)
class Target:
    """The artifact a change goes to, and what its first version says."""

    name: str
    kind: str
    run_id: str = ""
    project: str = ""
    """Empty: the artifact's own (only its first version sets it)."""
    create: bool = True
    """False: NOT_FOUND when the artifact has no version yet (a logged model is made by models.py)."""


Entries = dict[str, apb.ManifestEntry]
Edit = Callable[[Entries], Awaitable[Entries]]


@dataclass(frozen=True)
class Snapshot:
    """A version and its files by path (shared between requests: copy before changing)."""

    version: apb.ArtifactVersion
    entries: Mapping[str, apb.ManifestEntry]


def entry(path: str, digest: str, size: int) -> apb.ManifestEntry:
    return apb.ManifestEntry(path=path, digest=digest, size=size, mode=MODE)


class Files:
    """Blobs and versions of the artifacts behind MLflow's runs and logged models, over gRPC."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.stub = upstream.stub(artifacts_pb2_grpc.ArtifactsStub)
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._manifests: dict[str, Mapping[str, apb.ManifestEntry]] = {}
        """Entries by manifest digest: content-addressed, so never stale. A download of a directory
        of n files asks for a version n times; only the first fetches its entries."""
        self._cached_entries = 0

    async def version(self, who: Caller, name: str, number: int = 0) -> Snapshot | None:
        """A version and its files (the latest for 0); None when there is no such artifact. Each call
        asks the service (so each is authorized); only the entries of a manifest come from the cache."""
        ref = apb.VersionRef(name=name, version=number)
        try:
            got = await self.upstream.call(self.stub.GetVersion, apb.GetVersionRequest(ref=ref), who)
            entries = self._manifests.get(got.version.manifest_digest)
            if entries is None:
                ref = apb.VersionRef(name=name, version=got.version.version)
                request = apb.GetVersionRequest(ref=ref, include_entries=True)
                full = await self.upstream.call(self.stub.GetVersion, request, who)
                entries = self._remember(
                    full.version.manifest_digest, {e.path: e for e in full.version.entries}
                )
        except NotFound:
            return None
        return Snapshot(got.version, entries)

    def _remember(self, digest: str, entries: Entries) -> Entries:
        while self._manifests and self._cached_entries + len(entries) > CACHED_ENTRIES:
            self._cached_entries -= len(self._manifests.pop(next(iter(self._manifests))))
        if len(entries) <= CACHED_ENTRIES:
            self._manifests[digest] = entries
            self._cached_entries += len(entries)
        return entries

    async def put(self, who: Caller, data: bytes) -> str:
        """Store a small blob (at most SMALL bytes) whole; its digest."""
        digest = hashlib.sha256(data).hexdigest()
        blob = apb.UploadBlob(digest=digest, data=data, crc32=zlib.crc32(data))
        batch = apb.UploadRequest(batch=apb.UploadBatch(blobs=[blob]))
        try:
            async for reply in self.stub.Upload(iter([batch]), metadata=who.metadata()):
                if reply.stored and reply.digest != digest:
                    raise InvalidArgument(f"the artifacts service stored {reply.digest}, not {digest}")
        except grpc.aio.AioRpcError as exc:
            raise from_rpc(exc) from None
        return digest

    async def upload(self, who: Caller, body: AsyncIterator[bytes], size: int | None) -> tuple[str, int]:
        """Store a body arriving in pieces, in constant memory: its digest (the server computes it) and
        size. `size` None (a chunked body, as `requests` sends an empty file): a small body is held
        whole, a larger one spooled to a temporary file first (the service needs the size up front)."""
        if size is None:
            return await self._upload_unsized(who, body)
        return await self._upload(who, body, size), size

    async def _upload_unsized(self, who: Caller, body: AsyncIterator[bytes]) -> tuple[str, int]:
        head = bytearray()
        pieces = body.__aiter__()
        async for piece in pieces:
            head += piece
            if len(head) > SMALL:
                break
        else:
            return await self.put(who, bytes(head)), len(head)
        spool = await asyncio.to_thread(tempfile.TemporaryFile)
        try:
            pending = head
            async for piece in pieces:
                pending += piece
                if len(pending) >= CHUNK:
                    await asyncio.to_thread(spool.write, bytes(pending))
                    pending = bytearray()
            await asyncio.to_thread(spool.write, bytes(pending))
            size = spool.tell()
            spool.seek(0)

            async def chunks() -> AsyncIterator[bytes]:
                while data := await asyncio.to_thread(spool.read, CHUNK):
                    yield data

            return await self._upload(who, chunks(), size), size
        finally:
            spool.close()

    async def _upload(self, who: Caller, body: AsyncIterator[bytes], size: int) -> str:
        if size <= SMALL:
            whole = bytearray()
            async for piece in body:
                whole += piece
                if len(whole) > size:
                    break
            _check_length(len(whole), size)
            return await self.put(who, bytes(whole))
        call = self.stub.Upload(metadata=who.metadata())
        replies = asyncio.ensure_future(_stored_digest(call))
        try:
            await call.write(apb.UploadRequest(open=apb.UploadOpen(size=size, session_id=uuid.uuid4().hex)))
            offset = 0
            pending: list[bytes] = []  # pieces as uvicorn hands them over, joined once per chunk
            held = 0
            async for piece in body:
                pending.append(piece)
                held += len(piece)
                while held >= CHUNK or (held and offset + held >= size):
                    joined = b"".join(pending)
                    data, rest = (joined, b"") if len(joined) <= CHUNK else (joined[:CHUNK], joined[CHUNK:])
                    pending, held = ([rest] if rest else []), len(rest)
                    if replies.done():  # the service ended the stream: say why
                        await replies
                    chunk = apb.UploadChunk(offset=offset, data=data, crc32=zlib.crc32(data))
                    await call.write(apb.UploadRequest(chunk=chunk))
                    offset += len(data)
                if offset + held > size:
                    break
            _check_length(offset + held, size)
            await call.done_writing()
            return await replies
        except grpc.aio.AioRpcError as exc:
            raise from_rpc(exc) from None
        except asyncio.InvalidStateError:  # written after the service ended the stream
            await replies
            raise
        finally:
            if not replies.done():
                call.cancel()
                replies.cancel()
                with contextlib.suppress(BaseException):
                    await replies

    async def read(self, who: Caller, digest: str, offset: int = 0, length: int = 0) -> AsyncIterator[bytes]:
        """The bytes of a blob range, streamed. The first piece is awaited here, so a missing blob or a
        refusal is an error before any response is sent."""
        rng = apb.ByteRange(digest=digest, offset=offset, length=length)
        call = self.stub.Download(apb.DownloadRequest(ranges=[rng]), metadata=who.metadata())
        pieces = call.__aiter__()
        try:
            first = await pieces.__anext__()
        except StopAsyncIteration:
            first = None
        except grpc.aio.AioRpcError as exc:
            raise from_rpc(exc) from None

        async def rest() -> AsyncIterator[bytes]:
            try:
                if first is not None:
                    yield first.data
                async for message in pieces:
                    yield message.data
            finally:
                call.cancel()

        return rest()

    async def read_all(self, who: Caller, digest: str) -> bytes:
        out = bytearray()
        async for piece in await self.read(who, digest):
            out += piece
        return bytes(out)

    async def change(self, who: Caller, target: Target, edit: Edit, message: str) -> apb.ArtifactVersion:
        """Commit `edit` of the latest manifest (see "Concurrent writers" above); the version that holds
        it, or the latest when the edit changes nothing. A version keeps the run of the one before it
        unless the target names one."""
        async with self._queue(target.name):
            base = await self.version(who, target.name)
            source = base
            for _ in range(COMMIT_ATTEMPTS):
                if base is None and not target.create:
                    raise NotFound(f"there is no artifact {target.name!r}")
                wanted = await edit(dict(source.entries) if source is not None else {})
                if base is not None and _same(wanted, base.entries):
                    return base.version
                number = base.version.version if base is not None else 0
                digest = Manifest.build(
                    Entry(e.path, e.digest, e.size, e.mode) for e in wanted.values()
                ).digest
                request = apb.CommitVersionRequest(
                    name=target.name,
                    kind=target.kind,
                    entries=sorted(wanted.values(), key=lambda e: e.path),
                    message=message,
                    run_id=target.run_id or (base.version.run_id if base is not None else ""),
                    parent_version=number,
                    project=target.project,
                )
                try:
                    got = await self.upstream.call(
                        self.stub.CommitVersion,
                        request,
                        who,
                        idempotency_key=_commit_key(target.name, number),
                    )
                except ModelogError as err:
                    if err.code != grpc.StatusCode.ABORTED:
                        raise
                    base = source = await self.version(who, target.name)
                    continue
                made: apb.ArtifactVersion = got.version
                if made.manifest_digest != digest:
                    # Another gateway commit started from the same version first: start again from it.
                    base = source = await self.version(who, target.name)
                    continue
                if made.version == number + 1 or not got.created:
                    self._remember(digest, wanted)
                    return made
                # Versions made meanwhile by a client without our key lack this change: apply it again
                # on the one before ours (ours is the latest now).
                base = await self.version(who, target.name, made.version)
                source = await self.version(who, target.name, made.version - 1)
            raise Unavailable(
                f"{target.name!r} changed {COMMIT_ATTEMPTS} times while this request tried to; retry"
            )

    @contextlib.asynccontextmanager
    async def _queue(self, name: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(name, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[name]


def _same(wanted: Entries, entries: Mapping[str, apb.ManifestEntry]) -> bool:
    if wanted.keys() != entries.keys():
        return False
    return all((e.digest, e.size) == (entries[p].digest, entries[p].size) for p, e in wanted.items())


def _commit_key(name: str, base: int) -> str:
    return f"mlflow-files-{hashlib.sha256(name.encode()).hexdigest()[:40]}-after-v{base}"


def _check_length(got: int, size: int) -> None:
    if got != size:
        raise InvalidArgument.field(
            "body", f"the body held {'more' if got > size else 'fewer'} bytes than its Content-Length {size}"
        )


async def _stored_digest(call: Any) -> str:
    digest = ""
    async for reply in call:
        if reply.stored:
            digest = reply.digest
    if not digest:
        raise Unavailable("the artifacts service ended the upload without storing the blob; retry")
    return digest
