"""Summaries of metric chunks, written with each chunk so a long history downsamples without its points.

A chunk's points are cut into blocks of BLOCK consecutive points, and the chunk keeps each block's
picks: its first and last point, its smallest and largest (first occurrence, NaN skipped) and its
first NaN. A bucket made of whole blocks has its own first, last, min, max and first NaN among its
blocks' picks, so a downsampled read over picks keeps exactly what one over every point would keep,
reading about 4 points in BLOCK. The SQL is one function of a chunk's arrays, used both at write
time and by the upgrade that fills chunks written before summaries existed: a rebuilt view equals
the live one whichever way a chunk got its summary.
"""

from __future__ import annotations

from eventlog.projection import Tables

BLOCK = 64
"""Points per block: a read over picks carries ~6% of the points; histories shorter than
buckets x BLOCK are read whole (at 4,000 points asked: 64k points, a few milliseconds)."""

SUMMARY = (
    "n",
    "sorted",
    "first_step",
    "last_step",
    "pick_ords",
    "pick_steps",
    "pick_values",
    "pick_timestamps_ms",
)
CHUNK_SUMMARY_COLUMNS = """n                  int,       -- NULL: not summarised yet (read the points)
    sorted             boolean,   -- steps never decrease within the chunk
    first_step         bigint,
    last_step          bigint,
    pick_ords          int[],     -- 1-based positions in the chunk of every block's picks
    pick_steps         bigint[],
    pick_values        float8[],
    pick_timestamps_ms bigint[]"""
PICK_STORAGE = ", ".join(f"ALTER COLUMN {c} SET STORAGE EXTERNAL" for c in SUMMARY[4:])


def summary_sql(x: str) -> str:
    """A subquery of one row, the SUMMARY columns of the chunk whose arrays are `x`.steps, ...

    It subscripts the arrays once per pick: they must be in memory (a materialized CTE, a slice),
    not stored values, which PostgreSQL would fetch again for every subscript."""
    return f"""
SELECT cardinality({x}."values") AS n,
       coalesce((SELECT bool_and(a <= b)
                   FROM unnest({x}.steps[:cardinality({x}.steps) - 1], {x}.steps[2:]) AS z(a, b)),
                true) AS sorted,
       {x}.steps[1] AS first_step, {x}.steps[cardinality({x}.steps)] AS last_step,
       p.ords, p.steps, p.vals, p.ts
  FROM (SELECT array_agg(q.o ORDER BY q.o) AS ords, array_agg({x}.steps[q.o] ORDER BY q.o) AS steps,
               array_agg({x}."values"[q.o] ORDER BY q.o) AS vals,
               array_agg({x}.timestamps_ms[q.o] ORDER BY q.o) AS ts
          FROM (SELECT DISTINCT o
                  FROM (SELECT min(u.ord)::int AS lo, max(u.ord)::int AS hi,
                               min(u.ord) FILTER (WHERE u.v = 'NaN')::int AS nan,
                               min(u.v) FILTER (WHERE u.v <> 'NaN') AS vmin,
                               max(u.v) FILTER (WHERE u.v <> 'NaN') AS vmax
                          FROM unnest({x}."values") WITH ORDINALITY AS u(v, ord)
                         GROUP BY (u.ord - 1) / {BLOCK}) bk,
                       unnest(ARRAY[bk.lo, bk.hi, bk.nan,
                                    bk.lo - 1 + array_position({x}."values"[bk.lo:bk.hi], bk.vmin),
                                    bk.lo - 1 + array_position({x}."values"[bk.lo:bk.hi], bk.vmax)]) AS o
                 WHERE o IS NOT NULL) q) p
"""


def summary_upgrade(t: Tables) -> str:
    """Add the summary columns to a table an older release made, and summarise its chunks, once."""
    adds = ",\n    ".join(f"ADD COLUMN {line.strip().rstrip(',')}" for line in _column_lines())
    table = t.metric_chunks
    schema, name = table.split(".", 1)
    return f"""
DO $upgrade$ BEGIN
IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = '{schema}' AND table_name = '{name}' AND column_name = 'pick_ords') THEN
ALTER TABLE {table}
    {adds};
ALTER TABLE {table} {PICK_STORAGE};
UPDATE {table} m SET ({", ".join(SUMMARY)}) = (
    SELECT s.* FROM (SELECT m.steps[:] AS steps, m."values"[:] AS "values",
                            m.timestamps_ms[:] AS timestamps_ms OFFSET 0) y,
                    LATERAL ({summary_sql("y")}) s);
END IF;
END $upgrade$;
"""


def _column_lines() -> list[str]:
    return [line.split("--")[0] for line in CHUNK_SUMMARY_COLUMNS.splitlines()]
