"""Late labels: checked, typed like the predictions' ids, and joined with a window's predictions to
score it (pure Arrow; the service decides which windows to score)."""

from __future__ import annotations

import pyarrow as pa

from eventlog import InvalidArgument

from . import drift, tables
from .events import MonitorConfig


def same_ids(labels: pa.Table, id_type: pa.DataType, id_column: str) -> pa.Table:
    """Label ids in the type the predictions' ids have (integers sent as strings, or the reverse)."""
    if labels.schema.field("id").type == id_type:
        return labels
    try:
        return labels.set_column(0, "id", labels.column("id").cast(id_type))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InvalidArgument.field(
            "arrow.id",
            f"label ids are {labels.schema.field('id').type} but column {id_column!r} holds {id_type}",
        ) from None


def labels_table(table: pa.Table, id_column: str) -> pa.Table:
    name = id_column if id_column in table.column_names else "id"
    if name not in table.column_names:
        raise InvalidArgument.field("arrow", f"labels need the id column {id_column!r}")
    if "label" not in table.column_names:
        raise InvalidArgument.field("arrow", "labels need a 'label' column")
    unknown = [c for c in table.column_names if c not in (name, "label", "score")]
    if unknown:
        raise InvalidArgument.field("arrow", f"unknown column {unknown[0]!r}: labels are id, label and score")
    if table.num_rows == 0:
        raise InvalidArgument.field("arrow", "no labels in the request")
    score: pa.ChunkedArray | pa.Array = pa.nulls(table.num_rows, pa.float64())
    if "score" in table.column_names:
        t = table.column("score").type
        if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
            raise InvalidArgument.field("arrow.score", f"scores must be numbers, not {t}")
        score = table.column("score").cast(pa.float64())
    arrays = [tables.ids(table.column(name), f"arrow.{name}"), tables.label(table.column("label")), score]
    return pa.table(arrays, names=["id", "label", "score"])


def join_and_score(
    predictions: pa.Table, labels: list[pa.Table], config: MonitorConfig, task: drift.Task
) -> tuple[int, dict[str, float]]:
    assert config.prediction and config.id_column
    all_labels = pa.concat_tables(labels)
    # Later labels win: keep the last row per id.
    order = pa.array(range(all_labels.num_rows), pa.int64())
    all_labels = all_labels.append_column("_seq", order)
    last = all_labels.group_by("id").aggregate([("_seq", "max")])
    all_labels = all_labels.join(last, keys=["id", "_seq"], right_keys=["id", "_seq_max"], join_type="inner")
    preds = predictions.rename_columns(["id", "_prediction"])
    joined = preds.join(all_labels.select(["id", "label", "score"]), keys="id", join_type="inner")
    if joined.num_rows == 0:
        return 0, {}
    score = joined.column("score")
    has_score = score.null_count < len(score)
    metrics = drift.performance(
        joined.column("label").combine_chunks(),
        joined.column("_prediction").combine_chunks(),
        task,
        score.combine_chunks() if has_score else None,
    )
    return joined.num_rows, tables.finite(metrics)
