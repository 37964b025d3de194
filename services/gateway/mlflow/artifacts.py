"""MLflow's proxied artifacts (`mlflow-artifacts:/...`) as calls to our Artifacts service.

The stock client names files `<experiment_id>/<run_id>/artifacts/<path>` for a run and
`<experiment_id>/models/<model_id>/artifacts/<path>` for an MLflow 3 logged model. Decisions:

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
- **Paths.** `safe_path` is the one check of a path a request names, run before anything else (before
  authentication, before a byte is read): every decoding of it must be a plain relative path.
- **Multipart.** Not offered: server-info says so, and mpu/create answers with the message the client
  takes for "use one PUT". One PUT already streams in constant memory here, at any size.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import mimetypes
import re
import tempfile
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import grpc
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from eventlog.errors import InvalidArgument, ModelogError, NotFound, Unavailable
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog.shared.artifacts.manifest import Entry, Manifest, path_problem
from modelog_services.gateway.errors import mlflow_error
from modelog_services.gateway.http import caller
from modelog_services.gateway.mlflow.common import Body, Call, route
from modelog_services.gateway.mlflow.tracking import Experiments
from modelog_services.gateway.upstream import Caller, Upstream, from_rpc

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MPU = "/api/2.0/mlflow-artifacts/mpu"
MODEL_FILES = "artifacts/"
"""Where a logged model's files sit in its manifest (its metadata is beside them, see models.py)."""
CHUNK = 1 << 20
SMALL = 1 << 20
"""Bodies up to this size are sent whole in one UploadBatch (the service's limit for one)."""
MODE = 0o644
COMMIT_ATTEMPTS = 16
CACHED_RUNS = 10_000
CACHED_ENTRIES = 500_000
DECODINGS = 3
NO_MULTIPART = "Multipart upload is not supported for the current artifact repository"
"""The stock client's _UnsupportedMultipartUploadException.MESSAGE: an error starting with it makes
the client fall back to one PUT."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,100}\Z")
_ENCODED_SEPARATOR = re.compile(r"%(?:2f|5c)", re.I)
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ---------------------------------------------------------------- the path rule


def _path_form_problem(form: str) -> str | None:
    if not form:
        return "is empty"
    if _CONTROL.search(form):
        return "contains NUL or a control character"
    if "\\" in form:
        return "contains a backslash"
    if form.startswith("/"):
        return "is absolute"
    segments = form.split("/")
    if "" in segments:
        return "has an empty segment ('//' or a trailing '/')"
    if ".." in segments or "." in segments:
        return "has a '.' or '..' segment"
    if any(_DRIVE.match(s) for s in segments):
        return "has a segment starting with a drive letter (absolute on Windows)"
    return None


def safe_path(text: str, *, raw: str | None = None, field: str = "path") -> str:
    """`text` if it is a plain relative path, else INVALID_ARGUMENT (400 INVALID_PARAMETER_VALUE).

    `text` is the path as the server decoded it once; `raw`, for a path taken from the URL's path, is
    what came on the wire. What is refused, in every form a client, proxy or file system might read:
    `.`/`..` and empty segments, backslashes, NUL and control characters, absolute paths and drive
    letters, separators sent percent-encoded (`%2f`, `%5c`: the router would take them for real ones),
    and any of these appearing once the path is percent-decoded again (`%2e%2e`, `%252e%252e`), since
    a careless client or proxy decodes twice. Names that merely hold a `%` (`100%.csv`) pass.
    """

    def refuse(why: str) -> InvalidArgument:
        return InvalidArgument.field(field, f"artifact path {text!r} {why}; nothing was read or written")

    if raw is not None:
        if _ENCODED_SEPARATOR.search(raw):
            raise refuse("holds a percent-encoded '/' or '\\'")
        if unquote(raw) != text:
            raise refuse("does not decode to the path the server routed")
    form = text
    for times in range(DECODINGS + 1):
        why = _path_form_problem(form)
        if why:
            raise refuse(why if times == 0 else f"{why} once percent-decoded {times} more time(s)")
        decoded = unquote(form)
        if decoded == form:
            return text
        form = decoded
    raise refuse(f"is still percent-encoded after {DECODINGS} decodings")


def _raw_tail(request: Request, prefix: str) -> str:
    raw = request.scope.get("raw_path")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else quote(request.url.path)
    if not text.startswith(prefix):
        raise InvalidArgument.field("path", f"the request path does not start with {prefix!r} as sent")
    return text[len(prefix) :]


# ---------------------------------------------------------------- where a path leads


@dataclass(frozen=True)
class Where:
    """A path the client names, as MLflow lays it out."""

    experiment_id: str
    run_id: str
    model_id: str
    rel: str
    """Below the run's or model's artifact root; "" for the root itself."""

    @property
    def name(self) -> str:
        return f"model-{self.model_id}" if self.model_id else f"run-{self.run_id}"

    @property
    def key(self) -> str:
        """The path in the artifact's manifest ("" or MODEL_FILES[:-1] for the root)."""
        root = MODEL_FILES if self.model_id else ""
        return (root + self.rel).rstrip("/")

    def describe(self) -> str:
        return f"logged model {self.model_id}" if self.model_id else f"run {self.run_id}"


def where(path: str) -> Where | None:
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        eid, model_id, run_id, rel = parts[0], parts[2], "", parts[4:]
        ident = model_id
    elif len(parts) >= 3 and parts[2] == "artifacts":
        eid, run_id, model_id, rel = parts[0], parts[1], "", parts[3:]
        ident = run_id
    else:
        return None
    if not _ID.match(eid) or not _ID.match(ident):
        return None
    return Where(eid, run_id, model_id, "/".join(rel))


# ---------------------------------------------------------------- storage


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
            pending = bytearray()
            async for piece in body:
                pending += piece
                while len(pending) >= CHUNK or (pending and offset + len(pending) >= size):
                    data = bytes(pending[:CHUNK])
                    del pending[:CHUNK]
                    if replies.done():  # the service ended the stream: say why
                        await replies
                    chunk = apb.UploadChunk(offset=offset, data=data, crc32=zlib.crc32(data))
                    await call.write(apb.UploadRequest(chunk=chunk))
                    offset += len(data)
                if offset + len(pending) > size:
                    break
            _check_length(offset + len(pending), size)
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


# ---------------------------------------------------------------- the HTTP surface


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, media_type="application/json")


def _content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(offset, length) of a single `bytes=a-b` range; None for the whole file."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        start, end = max(0, size - int(m.group(2))), size - 1
    if start >= size or end < start:
        raise InvalidArgument.field("Range", f"{header!r} is outside the {size}-byte file")
    return start, end - start + 1


class MlflowArtifacts:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.files = Files(upstream)
        self.tracking = upstream.stub(tracking_pb2_grpc.TrackingStub)
        self.ids = Experiments()
        self.runs: dict[str, tuple[str, str]] = {}
        """run id -> (experiment id, project): facts that never change, kept to spare two calls a PUT."""

    async def file(self, request: Request) -> Response:
        try:
            path, tail = request.path_params["path"], _raw_tail(request, ARTIFACTS + "/")
            if request.method != "PUT" and path.endswith("/") and tail.endswith("/"):
                path, tail = path[:-1], tail[:-1]  # the client's delete_artifacts() of a whole root
            path = safe_path(path, raw=tail)
            who = caller(request)
            if request.method == "PUT":
                return await self._put(request, who, path)
            if request.method == "DELETE":
                return await self._delete(request, who, path)
            return await self._get(request, who, path)
        except ModelogError as err:
            return mlflow_error(err)

    async def listing(self, request: Request) -> Response:
        try:
            text = request.query_params.get("path", "")
            text = text[:-1] if text.endswith("/") else text
            if text:
                safe_path(text)
            who = caller(request)
            loc = where(text) if text else None
            snapshot = await self.files.version(who, loc.name) if loc is not None else None
            if loc is None or snapshot is None:
                return _json({})
            return _json(_children(snapshot.entries, loc.key))
        except ModelogError as err:
            return mlflow_error(err)

    async def multipart(self, request: Request) -> Response:
        try:
            safe_path(
                request.path_params["path"], raw=_raw_tail(request, f"{MPU}/{request.path_params['action']}/")
            )
            caller(request)
        except ModelogError as err:
            return mlflow_error(err)
        return _json(
            {
                "error_code": "NOT_IMPLEMENTED",
                "message": f"{NO_MULTIPART}: Modelog streams a single PUT of any size in constant memory",
            },
            501,
        )

    async def run_listing(self, call: Call) -> Body:
        """artifacts/list, the tracking API's listing (the Java and R clients use it): paths relative
        to the run's artifact root, not to the listed directory."""
        run_id = call.text("run_id") or call.text("run_uuid", required=True)
        path = call.text("path").rstrip("/")
        if path:
            safe_path(path)
        await self.ids.default(call)
        run = await call(self.tracking.GetRun, tpb.GetRunRequest(run_id=run_id))
        out: Body = {
            "root_uri": f"mlflow-artifacts:/{self.ids.theirs(run.run.info.experiment_id)}/{run_id}/artifacts"
        }
        snapshot = await self.files.version(call.caller, f"run-{run_id}")
        if snapshot is not None:
            listed = _children(snapshot.entries, path).get("files", [])
            if listed:
                out["files"] = [{**f, "path": f"{path}/{f['path']}" if path else f["path"]} for f in listed]
        return out

    async def _target(self, request: Request, who: Caller, loc: Where) -> Target:
        if loc.model_id:
            return Target(loc.name, "model", create=False)
        call = Call(request, {}, who, self.upstream, b"")
        known = self.runs.get(loc.run_id)
        if known is None:
            run = await call(self.tracking.GetRun, tpb.GetRunRequest(run_id=loc.run_id))
            eid = run.run.info.experiment_id
            exp = await call(self.tracking.GetExperiment, tpb.GetExperimentRequest(experiment_id=eid))
            known = (eid, exp.experiment.project)
            if len(self.runs) >= CACHED_RUNS:
                self.runs.pop(next(iter(self.runs)))
            self.runs[loc.run_id] = known
        if await self.ids.ours(call, loc.experiment_id) != known[0]:
            raise NotFound(f"run {loc.run_id} is not in experiment {loc.experiment_id}")
        return Target(loc.name, "other", run_id=loc.run_id, project=known[1])

    async def _put(self, request: Request, who: Caller, path: str) -> Response:
        loc = where(path)
        if loc is None or not loc.rel:
            raise InvalidArgument.field(
                "path",
                f"{path!r} is not a file of a run (<experiment_id>/<run_id>/artifacts/<path>) or of a "
                "logged model (<experiment_id>/models/<model_id>/artifacts/<path>)",
            )
        why = path_problem(loc.key)
        if why:
            raise InvalidArgument.field("path", f"artifact path {loc.rel!r} {why}")
        length = request.headers.get("content-length")
        target = await self._target(request, who, loc)
        try:
            digest, size = await self.files.upload(
                who, request.stream(), int(length) if length and length.isdigit() else None
            )
        except ClientDisconnect:
            return _json({"error_code": "CANCELLED", "message": "the client went away mid-upload"}, 499)

        async def add(entries: Entries) -> Entries:
            if any(p.startswith(loc.key + "/") for p in entries):
                raise InvalidArgument.field("path", f"{loc.rel!r} is a directory of {loc.describe()}")
            entries[loc.key] = entry(loc.key, digest, size)
            return entries

        await self.files.change(who, target, add, f"MLflow: PUT {loc.rel}")
        return _json({})

    async def _delete(self, request: Request, who: Caller, path: str) -> Response:
        loc = where(path)
        if loc is None:
            raise InvalidArgument.field("path", f"{path!r} is not under a run's or logged model's artifacts")
        root = MODEL_FILES if loc.model_id else ""

        async def remove(entries: Entries) -> Entries:
            if not loc.rel:
                return {p: e for p, e in entries.items() if not p.startswith(root)}
            return {p: e for p, e in entries.items() if p != loc.key and not p.startswith(loc.key + "/")}

        target = Target(loc.name, "model" if loc.model_id else "other", run_id=loc.run_id, create=False)
        with contextlib.suppress(NotFound):  # nothing there: nothing to delete, as in MLflow
            await self.files.change(who, target, remove, f"MLflow: DELETE {loc.rel or '(all files)'}")
        return _json({})

    async def _get(self, request: Request, who: Caller, path: str) -> Response:
        loc = where(path)
        snapshot = await self.files.version(who, loc.name) if loc is not None and loc.rel else None
        if loc is None or snapshot is None:
            raise NotFound(f"no artifact at {path!r}")
        found = snapshot.entries.get(loc.key)
        if found is None:
            if any(p.startswith(loc.key + "/") for p in snapshot.entries):
                raise InvalidArgument.field("path", f"{loc.rel!r} is a directory, not a file")
            raise NotFound(f"{loc.describe()} has no artifact {loc.rel!r}")
        size = int(found.size)
        rng = _byte_range(request.headers.get("range"), size) if size else None
        offset, length = rng if rng is not None else (0, size)
        name = loc.rel.rsplit("/", 1)[-1]
        headers = {
            "Content-Length": str(length),
            "Accept-Ranges": "bytes",
            # Attachment, no sniffing, no scripts: a logged HTML file must not run on our origin.
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "ETag": f'"{found.digest}"',
        }
        status = 200
        if rng is not None:
            status = 206
            headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
        if request.method == "HEAD":
            return Response(b"", status, headers=headers, media_type=_content_type(name))
        body = await self.files.read(who, found.digest, offset, length if rng is not None else 0)
        return StreamingResponse(body, status, headers=headers, media_type=_content_type(name))


def _children(entries: Mapping[str, apb.ManifestEntry], key: str) -> dict[str, Any]:
    """The files and directories right under `key`, named relative to it (as MLflow's server names
    them: the client joins them to the path it asked for)."""
    prefix = key + "/" if key else ""
    files: dict[str, int] = {}
    dirs: set[str] = set()
    for path, e in entries.items():
        if not path.startswith(prefix):
            continue
        head, sep, _ = path[len(prefix) :].partition("/")
        if sep:
            dirs.add(head)
        else:
            files[head] = int(e.size)
    listed = [{"path": n, "is_dir": False, "file_size": s} for n, s in files.items()]
    listed += [{"path": d, "is_dir": True} for d in dirs]
    return {"files": sorted(listed, key=lambda f: str(f["path"]))} if listed else {}


SERVER_INFO: dict[str, Any] = {
    "store_type": None,
    "workspaces_enabled": False,
    "trace_archival_enabled": False,
    "multipart_uploads_enabled": False,
    "multipart_downloads_enabled": False,
    "presigned_upload_run_id_supported": False,
    "presigned_upload_model_id_supported": False,
    "features_enabled": {"gateway": False},
}
"""What `mlflow.utils.server_info` reads: multipart off (see mpu above), so the client PUTs and GETs
each file in one streamed request; no workspaces. Served without credentials, like MLflow's: it holds
nothing about anyone."""


async def _server_info(request: Request) -> Response:
    return _json(SERVER_INFO)


def routes(upstream: Upstream) -> list[BaseRoute]:
    a = MlflowArtifacts(upstream)
    out: list[BaseRoute] = [
        Route(ARTIFACTS, a.listing, methods=["GET"]),
        Route(ARTIFACTS + "/{path:path}", a.file, methods=["GET", "PUT", "DELETE"]),
        Route(MPU + "/{action:str}/{path:path}", a.multipart, methods=["POST"]),
        *route(upstream, "/artifacts/list", ["GET"], a.run_listing),
    ]
    for prefix in ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow"):
        for name in ("server-info", "server-features"):
            out.append(Route(f"{prefix}/{name}", _server_info, methods=["GET"]))
    return out
