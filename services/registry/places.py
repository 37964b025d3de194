"""Where registered models live, for the permission table: a model's project, read from the inline
view (so a model is placed the moment it is registered). A deleted model keeps its place."""

from __future__ import annotations

import asyncpg

from modelog_platform.authz import Place, Resolver

from .projections import VIEWS


def resolvers(pool: asyncpg.Pool) -> dict[str, Resolver]:
    async def models(names: list[str]) -> dict[str, Place]:
        rows = await pool.fetch(f"SELECT name, project FROM {VIEWS.models} WHERE name = ANY($1)", names)
        return {r[0]: Place(r[1], (("model", r[0]),)) for r in rows}

    return {"model": models}
