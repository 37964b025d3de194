"""Where monitors live, for the permission table: a monitor's project, from the inline view."""

from __future__ import annotations

import asyncpg

from modelog_platform.authz import Place, Resolver

from .projections import VIEWS


def resolvers(pool: asyncpg.Pool) -> dict[str, Resolver]:
    async def monitors(names: list[str]) -> dict[str, Place]:
        rows = await pool.fetch(f"SELECT name, project FROM {VIEWS.monitors} WHERE name = ANY($1)", names)
        return {r[0]: Place(r[1]) for r in rows}

    return {"monitor": monitors}
