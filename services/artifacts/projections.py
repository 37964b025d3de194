"""The artifacts service's read models, written inline in the append transaction (a committed version
is readable at once) and rebuildable from the log.

Manifest entries are not projected: they live in the manifest blob, addressed by the version's digest.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from eventlog import DomainEvent, RecordedEvent
from eventlog.projection import Projection, Tables

from .events import (
    ArtifactAliasRemoved,
    ArtifactAliasSet,
    ArtifactTagged,
    ArtifactVersionCommitted,
    BlobsCollected,
    BlobStored,
    registry,
)

SCHEMA = "artifacts"
ARTIFACT_PREFIX = "artifact-"
VIEWS = Tables(SCHEMA)
"""The live tables, for readers."""


def _types(*classes: type[DomainEvent]) -> frozenset[str]:
    return frozenset(c.type for c in classes)


class ArtifactsView(Projection):
    """Artifacts, their versions, aliases and version tags."""

    name = "artifacts_versions"
    schema = SCHEMA
    sources = (SCHEMA,)
    tables = ("artifacts", "versions", "aliases", "version_tags")
    handles = _types(ArtifactVersionCommitted, ArtifactAliasSet, ArtifactAliasRemoved, ArtifactTagged)

    def upgrade(self, t: Tables) -> str:
        return f"ALTER TABLE {t.artifacts} ADD COLUMN IF NOT EXISTS project text NOT NULL DEFAULT 'default';"

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.artifacts} (
    name           text PRIMARY KEY,
    kind           text NOT NULL,
    latest_version bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    position       bigint NOT NULL,
    project        text NOT NULL DEFAULT 'default'
);
CREATE TABLE {t.versions} (
    name        text NOT NULL,
    version     bigint NOT NULL,
    kind        text NOT NULL,
    manifest    text NOT NULL,
    file_count  bigint NOT NULL,
    total_size  bigint NOT NULL,
    message     text NOT NULL,
    run_id      text,
    parent      bigint,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    position    bigint NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX ON {t.versions} (manifest);
CREATE INDEX ON {t.versions} (run_id) WHERE run_id IS NOT NULL;
CREATE TABLE {t.aliases} (
    name    text NOT NULL,
    alias   text NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE {t.version_tags} (
    name    text NOT NULL,
    version bigint NOT NULL,
    key     text NOT NULL,
    value   text NOT NULL,
    PRIMARY KEY (name, version, key)
);
"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        for ev in events:
            name = ev.stream_id.removeprefix(ARTIFACT_PREFIX)
            e = ev.decode(registry)
            if isinstance(e, ArtifactVersionCommitted):
                await conn.execute(
                    f"INSERT INTO {t.versions} (name, version, kind, manifest, file_count, total_size, "
                    "message, run_id, parent, created_by, created_at, position) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    name,
                    e.version,
                    e.kind,
                    e.manifest,
                    e.file_count,
                    e.total_size,
                    e.message,
                    e.run_id,
                    e.parent,
                    ev.metadata().acted_by,
                    ev.occurred_at,
                    ev.position,
                )
                await conn.execute(
                    f"INSERT INTO {t.artifacts} AS a (name, kind, latest_version, created_at, updated_at, "
                    "position, project) VALUES ($1, $2, $3, $4, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET "
                    "latest_version = excluded.latest_version, updated_at = excluded.updated_at, "
                    "position = excluded.position",
                    name,
                    e.kind,
                    e.version,
                    ev.occurred_at,
                    ev.position,
                    e.project,
                )
                await self._tags(conn, t, name, e.version, e.tags)
            elif isinstance(e, ArtifactAliasSet):
                await conn.execute(
                    f"INSERT INTO {t.aliases} (name, alias, version) VALUES ($1, $2, $3) "
                    "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
                    name,
                    e.alias,
                    e.version,
                )
            elif isinstance(e, ArtifactAliasRemoved):
                await conn.execute(f"DELETE FROM {t.aliases} WHERE name = $1 AND alias = $2", name, e.alias)
            elif isinstance(e, ArtifactTagged):
                await self._tags(conn, t, name, e.version, e.tags)

    async def _tags(
        self, conn: asyncpg.Connection, t: Tables, name: str, version: int, tags: dict[str, str]
    ) -> None:
        if tags:
            await conn.execute(
                f"INSERT INTO {t.version_tags} (name, version, key, value) "
                "SELECT $1, $2, k, v FROM unnest($3::text[], $4::text[]) AS x(k, v) "
                "ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
                name,
                version,
                list(tags),
                list(tags.values()),
            )


class BlobsView(Projection):
    """Every blob ever stored: when, and when collected (the audit of the store's contents)."""

    name = "artifacts_blobs"
    schema = SCHEMA
    sources = (SCHEMA,)
    tables = ("blobs",)
    handles = _types(BlobStored, BlobsCollected)

    def ddl(self, t: Tables) -> str:
        return f"""
CREATE TABLE {t.blobs} (
    digest       text PRIMARY KEY,
    size         bigint NOT NULL,
    stored_at    timestamptz NOT NULL,
    collected_at timestamptz,
    position     bigint NOT NULL
);
"""

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent], t: Tables) -> None:
        stored: list[RecordedEvent] = []
        for ev in events:
            if ev.type == BlobStored.type:
                stored.append(ev)
                continue
            await self._stored(conn, t, stored)
            stored = []
            e = ev.decode(registry)
            assert isinstance(e, BlobsCollected)
            await conn.execute(
                f"UPDATE {t.blobs} SET collected_at = $2, position = $3 WHERE digest = ANY($1::text[])",
                list(e.digests),
                ev.recorded_at,
                ev.position,
            )
        await self._stored(conn, t, stored)

    async def _stored(self, conn: asyncpg.Connection, t: Tables, events: list[RecordedEvent]) -> None:
        """One statement for a run of BlobStored events (an upload burst commits many together)."""
        if not events:
            return
        latest: dict[str, tuple[BlobStored, RecordedEvent]] = {}
        for ev in events:
            e = ev.decode(registry)
            assert isinstance(e, BlobStored)
            latest[e.digest] = (e, ev)  # one row may be written once per statement
        rows = list(latest.values())
        await conn.execute(
            f"INSERT INTO {t.blobs} (digest, size, stored_at, position) "
            "SELECT d, s, a, p FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::bigint[]) "
            "AS x(d, s, a, p) ON CONFLICT (digest) DO UPDATE SET size = excluded.size, "
            "stored_at = excluded.stored_at, collected_at = NULL, position = excluded.position",
            [e.digest for e, _ in rows],
            [e.size for e, _ in rows],
            [ev.recorded_at for _, ev in rows],
            [ev.position for _, ev in rows],
        )
