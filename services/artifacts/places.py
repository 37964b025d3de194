"""Where artifacts and blobs live, for the permission table. An artifact's project is in the inline
view. A blob is content-addressed and may be shared by versions of several projects: it lives in each
project with a version whose manifest names it (or that is that manifest), found by reading manifests,
which never change, so what was read is kept (bounded)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

import asyncpg

from modelog.shared.artifacts.manifest import Manifest
from modelog_platform.authz import Place, Resolver

from .projections import VIEWS

MANIFESTS_KEPT = 4096


def resolvers(pool: asyncpg.Pool, read_manifest: Callable[[str], Awaitable[Manifest]]) -> dict[str, Resolver]:
    contents: OrderedDict[str, frozenset[str]] = OrderedDict()

    async def artifacts(names: list[str]) -> dict[str, Place]:
        rows = await pool.fetch(f"SELECT name, project FROM {VIEWS.artifacts} WHERE name = ANY($1)", names)
        return {r[0]: Place(r[1]) for r in rows}

    async def digests_of(manifest: str) -> frozenset[str]:
        if manifest not in contents:
            m = await read_manifest(manifest)
            contents[manifest] = frozenset(e.digest for e in m.entries) | {manifest}
            while len(contents) > MANIFESTS_KEPT:
                contents.popitem(last=False)
        contents.move_to_end(manifest)
        return contents[manifest]

    async def blobs(digests: list[str]) -> dict[str, Place]:
        wanted = set(digests)
        projects: dict[str, set[str]] = {}
        rows = await pool.fetch(
            f"SELECT DISTINCT v.manifest, a.project FROM {VIEWS.versions} v "
            f"JOIN {VIEWS.artifacts} a USING (name)"
        )
        for manifest, project in rows:
            for digest in wanted & await digests_of(manifest):
                projects.setdefault(digest, set()).add(project)
        out = {}
        for digest, found in projects.items():
            first, *more = sorted(found)
            out[digest] = Place(first, tuple(("project", p) for p in more))
        return out

    return {"artifact": artifacts, "blob": blobs}
