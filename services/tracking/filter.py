"""What SearchRuns filters and orders on, in the one search grammar (modelog_services.query.filter):
metrics, params, tags, datasets and the run attributes below.

    metrics.acc > 0.9 AND (params.lr = '0.01' OR tags.`mlflow.user` LIKE 'ana%') AND NOT status = 'FAILED'
"""

from __future__ import annotations

from modelog_services.query import filter as grammar
from modelog_services.query.filter import (
    DATASET_FIELDS,
    MAX_NESTING,
    PREFIXES,
    And,
    Comparison,
    Entity,
    Expr,
    Kind,
    Not,
    Op,
    Or,
    OrderBy,
    Schema,
    Value,
    format_filter,
    format_order_by,
)

from .events import RUN_STATUSES

__all__ = [
    "ATTRIBUTES",
    "DATASET_FIELDS",
    "MAX_NESTING",
    "PREFIXES",
    "RUNS",
    "And",
    "Comparison",
    "Entity",
    "Expr",
    "Kind",
    "Not",
    "Op",
    "Or",
    "OrderBy",
    "Value",
    "allowed_ops",
    "format_filter",
    "format_order_by",
    "parse_filter",
    "parse_order_by",
]

ATTRIBUTES: dict[str, Kind] = {
    "run_id": "string",
    "run_name": "string",
    "experiment_id": "string",
    "status": "choice",
    "start_time": "integer",
    "end_time": "integer",
}
RUNS = Schema(
    what="runs",
    item="run",
    attributes=ATTRIBUTES,
    entities=("metric", "param", "tag", "attribute", "dataset"),
    choices={"status": tuple(RUN_STATUSES)},
    nullable=frozenset({"end_time"}),
)


def allowed_ops(entity: Entity, key: str) -> tuple[Op, ...]:
    """The operators a run column accepts (MLflow's type rules; `key` matters for attributes only)."""
    return RUNS.allowed_ops(entity, key)


def parse_filter(text: str) -> Expr | None:
    """A SearchRuns filter's AST; None when blank. Raises InvalidArgument naming the column."""
    return grammar.parse_filter(text, RUNS)


def parse_order_by(text: str) -> OrderBy:
    """`metrics.acc DESC`, `attributes.start_time`, `params.lr ASC` (datasets cannot order runs)."""
    return grammar.parse_order_by(text, RUNS)
