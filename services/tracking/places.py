"""Where tracking's resources live, for the permission table: an experiment's project, a run's
experiment and project. Read from the inline views, so a resource is placed the moment it exists."""

from __future__ import annotations

import asyncpg

from modelog_platform.authz import Place, Resolver

from .projections import VIEWS


def resolvers(pool: asyncpg.Pool) -> dict[str, Resolver]:
    async def experiments(ids: list[str]) -> dict[str, Place]:
        rows = await pool.fetch(
            f"SELECT experiment_id, project FROM {VIEWS.experiments} WHERE experiment_id = ANY($1)", ids
        )
        return {r[0]: Place(r[1], (("experiment", r[0]),)) for r in rows}

    async def experiment_names(names: list[str]) -> dict[str, Place]:
        rows = await pool.fetch(
            f"SELECT name, experiment_id, project FROM {VIEWS.experiments} WHERE name = ANY($1)", names
        )
        return {r[0]: Place(r[2], (("experiment", r[1]),)) for r in rows}

    async def runs(ids: list[str]) -> dict[str, Place]:
        rows = await pool.fetch(
            f"SELECT r.run_id, e.experiment_id, e.project FROM {VIEWS.runs} r "
            f"JOIN {VIEWS.experiments} e USING (experiment_id) WHERE r.run_id = ANY($1)",
            ids,
        )
        return {r[0]: Place(r[2], (("experiment", r[1]),)) for r in rows}

    return {"experiment": experiments, "experiment_name": experiment_names, "run": runs}
