"""Artifact versions: record one from a directory, find one, list them."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from modelog._client import Connection
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog.errors import FailedPrecondition
from modelog.shared.artifacts.manifest import Entry, Manifest, check_path
from modelog.shared.artifacts.refs import Ref, parse_ref

from ._base import (
    CHUNK,
    STREAM_HASH_MIN,
    WORKERS,
    Progress,
    _connected,
    _TerminalProgress,
    stub,
)
from .downloading import BlobReader, materialize
from .samehost import local_store
from .tree import HashCache, check_paths, hash_tree, manifest_of, scan
from .uploading import _upload


@dataclass
class ArtifactVersion:
    name: str
    version: int
    kind: str
    manifest_digest: str
    file_count: int
    total_size: int
    message: str = ""
    run_id: str | None = None
    parent_version: int | None = None
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    created_by: str = ""
    created_at: datetime | None = None
    created: bool = True
    """False when committing found the same content as the latest version (nothing new recorded)."""
    conn: Connection | None = field(default=None, repr=False, compare=False)
    _manifest: Manifest | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    def manifest(self) -> Manifest:
        """The version's files, checked against its digest (a server cannot swap them unnoticed)."""
        if self._manifest is None:
            with _connected(self.conn) as conn:
                resp = stub(conn).GetVersion(
                    pb.GetVersionRequest(
                        ref=pb.VersionRef(name=self.name, version=self.version), include_entries=True
                    )
                )
            entries = tuple(Entry(e.path, e.digest, e.size, e.mode) for e in resp.version.entries)
            manifest = Manifest(entries)
            if manifest.digest != self.manifest_digest:
                raise FailedPrecondition(
                    f"the files the server listed for {self.ref} do not match its manifest digest"
                )
            self._manifest = manifest
        return self._manifest

    def download(
        self,
        target: str | os.PathLike[str],
        *,
        exact: bool = False,
        progress: Progress | None = None,
        local: bool = True,
        verify: bool = False,
    ) -> Path:
        """Write the version's files under `target`; with `exact`, also delete files it does not have.
        With `local`, a store on this host is copied from rather than streamed (same bytes). With
        `verify`, every file is hashed as it is written, even blobs whose seal vouches for them
        (modelog.shared.artifacts.seal); streamed bytes are always hashed."""
        with _connected(self.conn) as conn:
            return materialize(
                stub(conn),
                self.manifest(),
                Path(target),
                exact=exact,
                progress=progress or _TerminalProgress(),
                local=local,
                verify=verify,
            )

    def open(self, path: str, mode: str = "rb") -> IO[Any]:
        entry = self.manifest().get(check_path(path))
        if entry is None:
            raise FileNotFoundError(f"{self.ref} has no file {path!r}")
        raw = BlobReader(self.conn, entry.digest, entry.size)
        reader = io.BufferedReader(raw, CHUNK)
        return io.TextIOWrapper(reader, encoding="utf-8") if "b" not in mode else reader


def _version(v: pb.ArtifactVersion, conn: Connection | None, created: bool = True) -> ArtifactVersion:
    return ArtifactVersion(
        name=v.name,
        version=v.version,
        kind=v.kind,
        manifest_digest=v.manifest_digest,
        file_count=v.file_count,
        total_size=v.total_size,
        message=v.message,
        run_id=v.run_id or None,
        parent_version=v.parent_version or None,
        aliases=list(v.aliases),
        tags=dict(v.tags),
        created_by=v.created_by,
        created_at=v.created_at.ToDatetime(tzinfo=UTC) if v.HasField("created_at") else None,
        created=created,
        conn=conn,
    )


def _ref_pb(ref: Ref) -> pb.VersionRef:
    return pb.VersionRef(name=ref.name, version=ref.version or 0, alias=ref.alias or "")


def log_artifacts(
    path: str | os.PathLike[str],
    *,
    name: str,
    kind: str = "",
    run_id: str | None = None,
    message: str = "",
    tags: Mapping[str, str] | None = None,
    aliases: Sequence[str] = (),
    conn: Connection | None = None,
    progress: Progress | None = None,
    cache: HashCache | None = None,
    local: bool = True,
) -> ArtifactVersion:
    """Record the directory (or file) at `path` as the next version of artifact `name`. With
    `local` (the default), a server on this host copies the files itself instead of receiving them."""
    progress = progress or _TerminalProgress()
    own_cache = cache is None
    cache = cache or HashCache()
    try:
        with _connected(conn) as c:
            client = stub(c)
            # Asked before the scan: a server on this host starts its ingest workers meanwhile.
            store = local_store(client) if local else None
            files = scan(Path(path))
            check_paths(files)
            # A server on this host hashes what it copies: hashing here first would read twice.
            hash_tree(files, cache, progress, stream_min=0 if store else STREAM_HASH_MIN)
            fresh = [f for f in files if f.digest is None]
            _upload(client, files, progress, WORKERS, store)
            cache.store(fresh)
            manifest = manifest_of(files, checked=True)
            request = pb.CommitVersionRequest(
                name=name,
                kind=kind,
                entries=[
                    pb.ManifestEntry(path=e.path, digest=e.digest, size=e.size, mode=e.mode)
                    for e in manifest.entries
                ],
                message=message,
                run_id=run_id or "",
                tags=dict(tags or {}),
                aliases=list(aliases),
            )
            try:
                resp = client.CommitVersion(request)
            except FailedPrecondition as exc:
                # A garbage collection may have taken a blob HaveBlobs reported: upload again, once.
                if "not stored" not in exc.message:
                    raise
                _upload(client, files, progress, WORKERS, store)
                resp = client.CommitVersion(request)
            version = _version(resp.version, conn, resp.created)
            version._manifest = manifest
            return version
    finally:
        if own_cache:
            cache.close()


def get(ref: str, *, conn: Connection | None = None) -> ArtifactVersion:
    """`name` (the latest), `name:3` or `name/3` (a version) or `name@alias` (modelog.shared.refs)."""
    parsed = parse_ref(ref)
    with _connected(conn) as c:
        resp = stub(c).GetVersion(pb.GetVersionRequest(ref=_ref_pb(parsed)))
    return _version(resp.version, conn)


def open(ref: str, path: str, mode: str = "rb", *, conn: Connection | None = None) -> IO[Any]:
    """Stream one file of a version (seekable; nothing is written to disk)."""
    return get(ref, conn=conn).open(path, mode)


def versions(name: str, *, conn: Connection | None = None) -> list[ArtifactVersion]:
    """Every version, newest first."""
    out: list[ArtifactVersion] = []
    token = ""
    with _connected(conn) as c:
        while True:
            resp = stub(c).ListVersions(pb.ListVersionsRequest(name=name, page_size=1000, page_token=token))
            out.extend(_version(v, conn) for v in resp.versions)
            token = resp.next_page_token
            if not token:
                return out
