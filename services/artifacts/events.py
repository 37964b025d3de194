"""The artifacts service's domain events: blobs stored and collected, artifact versions, aliases, tags.

Streams: `blob-<sha256>` (each time a blob's bytes are materialised), `artifact-<name>` (its versions,
aliases and tags) and `gc-<run id>` (one garbage collection). File bytes and manifests never travel in
events: a version carries its manifest's digest and a summary (file count, total size), because a
manifest of many files would make events larger than a Kafka message may be.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from eventlog import DomainEvent, EventRegistry

registry = EventRegistry()

Kind = Literal["dataset", "model", "other"]
KINDS: tuple[Kind, ...] = ("dataset", "model", "other")


@registry.register
class BlobStored(DomainEvent):
    """The store now holds these bytes under their digest (verified before this was recorded)."""

    digest: str
    size: int


@registry.register
class BlobsCollected(DomainEvent):
    """Part of one garbage collection: these blobs were unreachable, older than the grace period and
    needed by no upload session. A large collection is recorded as several events of one stream."""

    run_id: str
    digests: tuple[str, ...]
    bytes_freed: int
    grace_seconds: int


@registry.register
class ArtifactVersionCommitted(DomainEvent):
    name: str
    version: int
    kind: Kind
    manifest: str
    """SHA-256 of the manifest's canonical JSON, itself stored as a blob."""
    file_count: int
    total_size: int
    message: str = ""
    run_id: str | None = None
    parent: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    project: str = "default"
    """The artifact's project (its first version sets it); "default" before projects existed."""


@registry.register
class ArtifactAliasSet(DomainEvent):
    alias: str
    version: int
    previous: int | None = None


@registry.register
class ArtifactAliasRemoved(DomainEvent):
    alias: str
    version: int


@registry.register
class ArtifactTagged(DomainEvent):
    version: int
    tags: dict[str, str]
