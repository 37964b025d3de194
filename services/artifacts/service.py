"""The artifacts command and query paths: validate, check the blob store, decide, append, read the views.

The I/O a rule needs (are the blobs stored, at the sizes the manifest claims?) happens here, under the
garbage collector's shared lock, so no collection can delete a blob between that check and the append
that makes it reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from eventlog import EventStore, Executed, FailedPrecondition, InvalidArgument, Metadata, NewEvent, NotFound
from eventlog.commandpath import CommandPath, Route, command_map
from modelog.shared.artifacts.manifest import Diff, Entry, Manifest, diff
from modelog.shared.artifacts.refs import Ref, check_alias, check_name
from modelog_platform.access import project_name
from modelog_platform.authz import Visible

from .blobstore import BlobStore
from .domain import (
    ArtifactCommand,
    ArtifactState,
    CommitVersion,
    RemoveAlias,
    SetAlias,
    TagVersion,
    artifact_decider,
    artifact_stream_id,
    blob_stream_id,
    check_kind,
    check_message,
    check_run_id,
    check_tags,
)
from .events import ArtifactVersionCommitted, BlobStored, registry
from .gc import GcLock
from .projections import VIEWS

MAX_PAGE = 1000


class MissingBlobs(FailedPrecondition):
    reason = "BLOBS_MISSING"


@dataclass
class VersionView:
    name: str
    version: int
    kind: str
    manifest: str
    file_count: int
    total_size: int
    message: str
    run_id: str | None
    parent: int | None
    created_by: str
    created_at: datetime
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    entries: Sequence[Entry] = ()


class BlobRecorder:
    """Appends BlobStored events, holding each for a few milliseconds so that those of concurrent
    uploads reach the event store together and group commit writes them in one transaction (one
    per blob made a burst of small files cost a transaction each)."""

    def __init__(self, store: EventStore, window_s: float = 0.01, max_batch: int = 256) -> None:
        self.store, self.window_s, self.max_batch = store, window_s, max_batch
        self.pending: list[tuple[str, int, Metadata, asyncio.Future[None]]] = []
        self.full = asyncio.Event()
        self.flusher: asyncio.Task[None] | None = None
        self.flushing: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def record(self, digest: str, size: int, meta: Metadata) -> None:
        done = asyncio.get_running_loop().create_future()
        self.pending.append((digest, size, meta, done))
        if len(self.pending) >= self.max_batch:
            self.full.set()
        if self.flusher is None:
            self.flusher = asyncio.create_task(self._flush())
            self.flushing.add(self.flusher)
            self.flusher.add_done_callback(self.flushing.discard)
        await asyncio.shield(done)  # a cancelled caller leaves its append to finish

    async def _flush(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.full.wait(), self.window_s)
        batch, self.pending, self.flusher = self.pending, [], None
        self.full.clear()
        results = await asyncio.gather(
            *(
                self.store.append(blob_stream_id(d), None, [NewEvent.of(BlobStored(digest=d, size=s))], m)
                for d, s, m, _ in batch
            ),
            return_exceptions=True,
        )
        for (*_, done), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                done.set_exception(result)
            else:
                done.set_result(None)


def without_key(meta: Metadata) -> Metadata:
    """For appends a request makes besides its own command (blobs it stored): a retry of the request
    must not find these under its idempotency key."""
    return meta.model_copy(update={"idempotency_key": None})


class ArtifactService:
    def __init__(self, store: EventStore, blobs: BlobStore, lock: GcLock | None = None) -> None:
        self.store = store
        self.blobs = blobs
        self.pool: asyncpg.Pool = store.pool
        self.lock = lock or GcLock(store.pool)
        self.recorder = BlobRecorder(store)
        route = Route(artifact_decider, artifact_stream_id, initial=lambda name: ArtifactState(name=name))
        self.commands = CommandPath(store, events=registry, routes=command_map((ArtifactCommand, route)))

    # ------------------------------------------------------------ blobs

    async def record_blob(self, digest: str, size: int, meta: Metadata) -> None:
        await self.recorder.record(digest, size, meta)

    async def record_blobs(self, blobs: Sequence[tuple[str, int]], meta: Metadata) -> None:
        """BlobStored for each of many blobs stored by one request, queued together (IngestLocal)."""
        await self.store.append_many(
            [(blob_stream_id(d), None, [NewEvent.of(BlobStored(digest=d, size=s))]) for d, s in blobs], meta
        )

    async def manifest(self, digest: str) -> Manifest:
        def read() -> Manifest:
            reader = self.blobs.open_range(digest)
            try:
                data = bytearray()
                while chunk := reader.read(1 << 20):
                    data += chunk
            finally:
                reader.close()
            return Manifest.parse(bytes(data))

        try:
            return await asyncio.to_thread(read)
        except FileNotFoundError:
            raise FailedPrecondition(f"manifest {digest} is missing from the blob store") from None

    # ------------------------------------------------------------ commands

    async def commit(
        self,
        name: str,
        entries: Sequence[Entry],
        meta: Metadata,
        *,
        kind: str = "",
        message: str = "",
        run_id: str = "",
        parent: int = 0,
        tags: Mapping[str, str] | None = None,
        aliases: Sequence[str] = (),
        project: str = "",
    ) -> tuple[VersionView, bool]:
        check_name(name)
        in_project = project_name(project) if project else None
        if parent < 0:
            raise InvalidArgument.field("parent_version", "must be >= 0 (0: the latest version)")
        if len(aliases) > 20:
            raise InvalidArgument.field("aliases", "at most 20 aliases per commit")
        cmd_aliases = [check_alias(a, f"aliases[{i}]") for i, a in enumerate(aliases)]
        manifest = await asyncio.to_thread(Manifest.build, entries)
        cmd = CommitVersion(
            name=name,
            kind=check_kind(kind),
            manifest=manifest.digest,
            file_count=manifest.file_count,
            total_size=manifest.total_size,
            message=check_message(message),
            run_id=check_run_id(run_id),
            parent=parent or None,
            tags=check_tags(tags or {}),
            aliases=cmd_aliases,
            project=in_project,
        )
        async with self.lock.shared():
            await asyncio.to_thread(self._check_blobs, manifest)
            digest, created = await asyncio.to_thread(self.blobs.put, manifest.canonical())
            if created:
                await self.record_blob(digest, len(manifest.canonical()), without_key(meta))
            outcome = await self._handle(name, cmd, meta)
        committed = [e for e in outcome.events if isinstance(e, ArtifactVersionCommitted)]
        if committed:
            return await self.get(Ref(name, committed[0].version)), True
        if outcome.replayed and outcome.result is not None:
            version = await self.pool.fetchval(
                f"SELECT version FROM {VIEWS.versions} WHERE name = $1 AND position BETWEEN $2 AND $3",
                name,
                outcome.result.first_position,
                outcome.result.last_position,
            )
            if version is not None:
                return await self.get(Ref(name, version)), True
        return await self.get(Ref(name, outcome.state.latest)), False

    def _check_blobs(self, manifest: Manifest) -> None:
        missing: list[Entry] = []
        sizes: dict[str, int | None] = {}
        for e in manifest.entries:
            if e.digest not in sizes:
                sizes[e.digest] = self.blobs.size(e.digest)
            size = sizes[e.digest]
            if size is None:
                missing.append(e)
            elif size != e.size:
                raise InvalidArgument.field(
                    "entries.size", f"{e.path!r} claims {e.size} bytes but blob {e.digest} holds {size}"
                )
        if missing:
            digests = list(dict.fromkeys(e.digest for e in missing))
            shown = ", ".join(f"{e.path!r} ({e.digest[:12]})" for e in missing[:5])
            raise MissingBlobs(
                f"{len(digests)} blob(s) of this version are not stored; upload them first: {shown}"
                + (" ..." if len(missing) > 5 else ""),
                metadata={"missing_count": str(len(digests)), "missing": ",".join(digests[:100])},
            )

    async def _handle(self, name: str, cmd: ArtifactCommand, meta: Metadata) -> Executed[ArtifactState]:
        return await self.commands.send(name, cmd, meta)

    async def set_alias(self, name: str, alias: str, version: int, meta: Metadata) -> tuple[VersionView, int]:
        check_name(name)
        check_alias(alias)
        previous = await self.pool.fetchval(
            f"SELECT version FROM {VIEWS.aliases} WHERE name = $1 AND alias = $2", name, alias
        )
        outcome = await self._handle(name, SetAlias(alias, version), meta)
        return await self.get(Ref(name, outcome.state.aliases[alias])), int(previous or 0)

    async def remove_alias(self, name: str, alias: str, meta: Metadata) -> None:
        check_name(name)
        check_alias(alias)
        await self._handle(name, RemoveAlias(alias), meta)

    async def tag(self, ref: Ref, tags: Mapping[str, str], meta: Metadata) -> VersionView:
        version = await self.resolve(ref)
        await self._handle(ref.name, TagVersion(version, check_tags(tags)), meta)
        return await self.get(Ref(ref.name, version))

    # ------------------------------------------------------------ queries

    async def resolve(self, ref: Ref) -> int:
        check_name(ref.name)
        async with self.pool.acquire() as conn:
            latest = await conn.fetchval(
                f"SELECT latest_version FROM {VIEWS.artifacts} WHERE name = $1", ref.name
            )
            if latest is None:
                raise NotFound(f"no artifact named {ref.name!r}")
            if ref.version is not None:
                if not 1 <= ref.version <= latest:
                    raise NotFound(
                        f"{ref.name}:v{ref.version} does not exist; the latest version is v{latest}"
                    )
                return ref.version
            if ref.alias is None:
                return int(latest)
            version = await conn.fetchval(
                f"SELECT version FROM {VIEWS.aliases} WHERE name = $1 AND alias = $2", ref.name, ref.alias
            )
        if version is None:
            raise NotFound(f"artifact {ref.name!r} has no alias {ref.alias!r}")
        return int(version)

    async def get(self, ref: Ref, *, entries: bool = False) -> VersionView:
        version = await self.resolve(ref)
        views = await self._views(ref.name, [version])
        view = views[0]
        if entries:
            view.entries = (await self.manifest(view.manifest)).entries
        return view

    async def diff(self, a: Ref, b: Ref) -> tuple[VersionView, VersionView, Diff]:
        va, vb = await self.get(a), await self.get(b)
        ma, mb = await self.manifest(va.manifest), await self.manifest(vb.manifest)
        return va, vb, await asyncio.to_thread(diff, ma, mb)

    async def list_versions(self, name: str, page_size: int, before: int | None) -> list[VersionView]:
        check_name(name)
        size = min(MAX_PAGE, page_size or 100)
        rows = await self.pool.fetch(
            f"SELECT version FROM {VIEWS.versions} WHERE name = $1 AND version < $2 "
            "ORDER BY version DESC LIMIT $3",
            name,
            before or 2**62,
            size,
        )
        if not rows and before is None:
            await self.resolve(Ref(name))  # NOT_FOUND for an unknown artifact
        return await self._views(name, [r[0] for r in rows])

    async def list_artifacts(self, kind: str, visible: Visible | None = None) -> list[asyncpg.Record]:
        """Every artifact of a kind, or only those of the projects `visible` names."""
        check_kind(kind)
        return list(
            await self.pool.fetch(
                f"SELECT name, kind, latest_version, created_at, updated_at, project FROM {VIEWS.artifacts} "
                "WHERE ($1 = '' OR kind = $1) "
                "AND ($2::text[] IS NULL OR project = ANY($2) OR name = ANY($3)) "
                "ORDER BY name",
                kind,
                sorted(visible.projects) if visible is not None else None,
                sorted(visible.keys) if visible is not None else [],
            )
        )

    async def _views(self, name: str, versions: list[int]) -> list[VersionView]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT name, version, kind, manifest, file_count, total_size, message, run_id, parent, "
                f"created_by, created_at FROM {VIEWS.versions} "
                "WHERE name = $1 AND version = ANY($2::bigint[])",
                name,
                versions,
            )
            aliases = await conn.fetch(
                f"SELECT version, alias FROM {VIEWS.aliases} WHERE name = $1 AND version = ANY($2::bigint[]) "
                "ORDER BY alias",
                name,
                versions,
            )
            tags = await conn.fetch(
                f"SELECT version, key, value FROM {VIEWS.version_tags} "
                "WHERE name = $1 AND version = ANY($2::bigint[])",
                name,
                versions,
            )
        by_version = {r["version"]: VersionView(*r) for r in rows}
        for r in aliases:
            by_version[r["version"]].aliases.append(r["alias"])
        for r in tags:
            by_version[r["version"]].tags[r["key"]] = r["value"]
        return [by_version[v] for v in versions if v in by_version]
