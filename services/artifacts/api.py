"""gRPC Artifacts: translate requests to the service's commands and queries, and results back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import FailedPrecondition, InvalidArgument, PermissionDenied
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog.shared.artifacts.manifest import Entry, check_digest
from modelog.shared.artifacts.refs import LATEST, Ref, check_alias, check_name
from modelog_platform import context

from . import transfers
from .blobstore import FileBlobStore
from .gc import collect
from .ingestpool import IngestPool
from .scrub import ScrubReport, verify_store
from .service import ArtifactService, VersionView, without_key

MAX_HAVE = 100_000
MAX_INGEST = 10_000
POOL_MIN_FILES = 16
"""IngestLocal calls with fewer files are copied on a thread here: the workers pay off where the
per-file system calls (and the GIL hand-offs between them) dominate, not for a few large files,
whose copy and hash run outside the GIL anyway."""


def _ts(value: object) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)  # type: ignore[arg-type]
    return ts


def ref_of(r: pb.VersionRef, field: str = "ref") -> Ref:
    name = check_name(r.name, f"{field}.name")
    if r.version < 0:
        raise InvalidArgument.field(f"{field}.version", "must be >= 1 (0: by alias, or the latest)")
    if r.version:
        return Ref(name, version=r.version)
    if r.alias and r.alias != LATEST:
        return Ref(name, alias=check_alias(r.alias, f"{field}.alias"))
    return Ref(name)


def version_pb(v: VersionView) -> pb.ArtifactVersion:
    return pb.ArtifactVersion(
        name=v.name,
        version=v.version,
        kind=v.kind,
        manifest_digest=v.manifest,
        file_count=v.file_count,
        total_size=v.total_size,
        message=v.message,
        run_id=v.run_id or "",
        parent_version=v.parent or 0,
        aliases=v.aliases,
        tags=v.tags,
        created_by=v.created_by,
        created_at=_ts(v.created_at),
        entries=[pb.ManifestEntry(path=e.path, digest=e.digest, size=e.size, mode=e.mode) for e in v.entries],
    )


def progress_pb(r: ScrubReport) -> pb.VerifyStoreProgress:
    return pb.VerifyStoreProgress(
        blobs_done=r.blobs_done,
        blobs_total=r.blobs_total,
        bytes_done=r.bytes_done,
        bytes_total=r.bytes_total,
        done=r.done,
        ok=r.ok,
        resealed=r.resealed,
        unsealed=r.unsealed,
        damaged=r.damaged,
        vanished=r.vanished,
        damaged_blobs=[
            pb.DamagedBlob(digest=d.digest, path=d.path, actual_sha256=d.actual_sha256, reason=d.reason)
            for d in (r.damaged_blobs if r.done else [])
        ],
    )


class ArtifactsServicer(artifacts_pb2_grpc.ArtifactsServicer):
    def __init__(self, service: ArtifactService, ingest_pool: IngestPool | None = None) -> None:
        self.service = service
        self.blobs = service.blobs
        self.ingest_pool = ingest_pool

    async def HaveBlobs(
        self, request: pb.HaveBlobsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.HaveBlobsResponse:
        if len(request.digests) > MAX_HAVE:
            raise InvalidArgument.field("digests", f"at most {MAX_HAVE} per call")
        digests = list(dict.fromkeys(check_digest(d, f"digests[{i}]") for i, d in enumerate(request.digests)))
        return pb.HaveBlobsResponse(missing=await asyncio.to_thread(self.blobs.missing, digests))

    async def Upload(
        self, requests: AsyncIterator[pb.UploadRequest], ctx: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.UploadResponse]:
        meta = without_key(context.current().metadata())

        async def record(digest: str, size: int) -> None:
            await self.service.record_blob(digest, size, meta)

        async for reply in transfers.upload(self.blobs, record, requests):
            yield reply

    async def Download(
        self, request: pb.DownloadRequest, ctx: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.DownloadResponse]:
        async for reply in transfers.download(self.blobs, request):
            yield reply

    async def LocalStore(
        self, request: pb.LocalStoreRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.LocalStoreResponse:
        if not isinstance(self.blobs, FileBlobStore):
            return pb.LocalStoreResponse()
        root, proof, proof_sha = self.blobs.local_info()
        if self.ingest_pool is not None:
            await asyncio.to_thread(self.ingest_pool.warm)
        return pb.LocalStoreResponse(
            root=str(root.resolve()), proof_path=str(proof.resolve()), proof_sha256=proof_sha
        )

    async def IngestLocal(
        self, request: pb.IngestLocalRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.IngestLocalResponse:
        meta = without_key(context.current().metadata())
        if not isinstance(self.blobs, FileBlobStore) or not self.blobs.check_proof(request.proof):
            raise PermissionDenied(
                "IngestLocal needs the content of the store's proof file (LocalStore.proof_path): only a "
                "client on the server's host with the server's file permissions may name files to read"
            )
        if len(request.files) > MAX_INGEST:
            raise InvalidArgument.field("files", f"at most {MAX_INGEST} per call")
        items = [
            (f.path, check_digest(f.digest, f"files[{i}].digest") if f.digest else None)
            for i, f in enumerate(request.files)
        ]
        if self.ingest_pool is not None and len(items) >= POOL_MIN_FILES:
            results = await self.ingest_pool.ingest_many(items)
        else:
            results = await asyncio.to_thread(self.blobs.ingest_many, items)
        await self.service.record_blobs([(r.digest, r.size) for r in results if r.created], meta)
        return pb.IngestLocalResponse(
            files=[
                pb.IngestedFile(
                    digest=r.digest,
                    size=r.size,
                    created=r.created,
                    mtime_ns=r.mtime_ns,
                    ctime_ns=r.ctime_ns,
                    inode=r.inode,
                    error=r.error,
                )
                for r in results
            ]
        )

    async def CommitVersion(
        self, request: pb.CommitVersionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.CommitVersionResponse:
        rc = context.current()
        view, created = await self.service.commit(
            request.name,
            [Entry(e.path, e.digest, e.size, e.mode) for e in request.entries],
            rc.metadata(),
            kind=request.kind,
            message=request.message,
            run_id=request.run_id,
            parent=request.parent_version,
            tags=dict(request.tags),
            aliases=list(request.aliases),
            project=request.project,
        )
        return pb.CommitVersionResponse(version=version_pb(view), created=created)

    async def GetVersion(
        self, request: pb.GetVersionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetVersionResponse:
        view = await self.service.get(ref_of(request.ref), entries=request.include_entries)
        return pb.GetVersionResponse(version=version_pb(view))

    async def ListVersions(
        self, request: pb.ListVersionsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ListVersionsResponse:
        if request.page_size < 0:
            raise InvalidArgument.field("page_size", "must be >= 0")
        before = None
        if request.page_token:
            if not request.page_token.isdigit():
                raise InvalidArgument.field("page_token", "is not a token this server issued")
            before = int(request.page_token)
        views = await self.service.list_versions(request.name, request.page_size, before)
        size = min(1000, request.page_size or 100)
        token = str(views[-1].version) if len(views) == size and views[-1].version > 1 else ""
        return pb.ListVersionsResponse(versions=[version_pb(v) for v in views], next_page_token=token)

    async def ListArtifacts(
        self, request: pb.ListArtifactsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ListArtifactsResponse:
        rows = await self.service.list_artifacts(request.kind, context.visible("artifact"))
        return pb.ListArtifactsResponse(
            artifacts=[
                pb.Artifact(
                    name=r["name"],
                    kind=r["kind"],
                    latest_version=r["latest_version"],
                    created_at=_ts(r["created_at"]),
                    updated_at=_ts(r["updated_at"]),
                    project=r["project"],
                )
                for r in rows
            ]
        )

    async def DiffVersions(
        self, request: pb.DiffVersionsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.DiffVersionsResponse:
        a, b, changes = await self.service.diff(ref_of(request.a, "a"), ref_of(request.b, "b"))

        def rows(items: list[tuple[str, Entry | None, Entry | None]]) -> list[pb.FileChange]:
            out = []
            for path, old, new in items:
                change = pb.FileChange(path=path)
                if old is not None:
                    change.old_size, change.old_digest, change.old_mode = old.size, old.digest, old.mode
                if new is not None:
                    change.new_size, change.new_digest, change.new_mode = new.size, new.digest, new.mode
                out.append(change)
            return out

        return pb.DiffVersionsResponse(
            a=version_pb(a),
            b=version_pb(b),
            added=rows([(c.path, c.old, c.new) for c in changes.added]),
            removed=rows([(c.path, c.old, c.new) for c in changes.removed]),
            modified=rows([(c.path, c.old, c.new) for c in changes.modified]),
            unchanged=changes.unchanged,
        )

    async def SetAlias(
        self, request: pb.SetAliasRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SetAliasResponse:
        rc = context.current()
        if request.version < 1:
            raise InvalidArgument.field("version", "must be >= 1")
        view, previous = await self.service.set_alias(
            request.name, request.alias, request.version, rc.metadata()
        )
        return pb.SetAliasResponse(version=version_pb(view), previous_version=previous)

    async def RemoveAlias(
        self, request: pb.RemoveAliasRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RemoveAliasResponse:
        rc = context.current()
        await self.service.remove_alias(request.name, request.alias, rc.metadata())
        return pb.RemoveAliasResponse()

    async def TagVersion(
        self, request: pb.TagVersionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.TagVersionResponse:
        rc = context.current()
        if not request.tags:
            raise InvalidArgument.field("tags", "at least one tag is required")
        view = await self.service.tag(ref_of(request.ref), dict(request.tags), rc.metadata())
        return pb.TagVersionResponse(version=version_pb(view))

    async def GarbageCollect(
        self, request: pb.GarbageCollectRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GarbageCollectResponse:
        rc = context.current()
        if request.grace_seconds < 0:
            raise InvalidArgument.field("grace_seconds", "must be >= 0")
        report = await collect(
            self.service.store,
            self.blobs,
            self.service.lock,
            self.service.manifest,
            request.grace_seconds,
            without_key(rc.metadata()),
            dry_run=request.dry_run,
        )
        return pb.GarbageCollectResponse(
            collected_blobs=report.collected_blobs,
            collected_bytes=report.collected_bytes,
            kept_blobs=report.kept_blobs,
            kept_bytes=report.kept_bytes,
            spared_blobs=report.spared_blobs,
            removed_sessions=report.removed_sessions,
            run_id=report.run_id,
            dry_run=report.dry_run,
        )

    async def VerifyStore(
        self, request: pb.VerifyStoreRequest, ctx: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.VerifyStoreProgress]:
        if not isinstance(self.blobs, FileBlobStore):
            raise FailedPrecondition(
                f"VerifyStore re-hashes the files of the local blob store (MODELOG_HOME/blobs), but this "
                f"server keeps its blobs in a {type(self.blobs).__name__}, which it cannot scrub"
            )
        async for report in verify_store(self.blobs, reseal=request.reseal):
            yield progress_pb(report)
