"""Rows in and out of the monitoring service: Arrow IPC from clients, Parquet blobs in the artifacts
service, and the monitor's configuration as the drift engine's `Schema`.

Every table is normalised to the monitor's columns and types before it is stored, so the batches of a
window concatenate without casting and the drift engine sees one type per column: numerical
(and text lengths' source text) as float64 / string, categorical as string.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from eventlog import InvalidArgument

from . import drift
from .events import MonitorConfig

PARQUET_COMPRESSION = "lz4"
"""Measured on generated windows: lz4 costs little CPU and random floats hardly compress anyway."""


def schema_of(config: MonitorConfig) -> drift.Schema:
    return drift.Schema(
        columns=tuple(drift.ColumnSpec(c.name, c.kind, c.stattest, c.threshold) for c in config.columns),
        prediction=config.prediction,
        target=config.target,
        task=config.task,
        id_column=config.id_column,
        timestamp_column=config.timestamp_column,
    )


def options_of(config: MonitorConfig) -> drift.DriftOptions:
    return drift.DriftOptions(
        drift_share=config.drift_share, stattest=config.stattest, threshold=config.threshold
    )


def read_ipc(data: bytes, field: str = "arrow") -> pa.Table:
    if not data:
        raise InvalidArgument.field(field, "no rows: send Arrow IPC stream bytes")
    try:
        return ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidArgument.field(field, f"not an Arrow IPC stream ({exc})") from None


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def read_file(data: bytes, path: str) -> pa.Table:
    """A reference file from an artifact: Parquet or CSV, by its extension."""
    try:
        if path.endswith(".parquet") or path.endswith(".pq"):
            return pq.read_table(io.BytesIO(data))
        if path.endswith(".csv"):
            return pacsv.read_csv(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidArgument.field("reference_path", f"{path} cannot be read ({exc})") from None
    raise InvalidArgument.field("reference_path", f"{path} is neither Parquet (.parquet) nor CSV (.csv)")


def to_parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
    return sink.getvalue()


def from_parquet(data: bytes, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(io.BytesIO(data), columns=columns)


def known_columns(config: MonitorConfig) -> list[str]:
    extra = (config.prediction, config.target, config.id_column, config.timestamp_column)
    return [c.name for c in config.columns] + [c for c in extra if c]


def _cast(table: pa.Table, name: str, kind: str, what: str) -> pa.Array | pa.ChunkedArray:
    column = table.column(name)
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if kind == "numerical":
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise InvalidArgument.field(f"{what}.{name}", f"numerical column {name!r} holds {t}, not numbers")
        return column.cast(pa.float64())
    if kind == "text" and not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise InvalidArgument.field(f"{what}.{name}", f"text column {name!r} holds {t}, not strings")
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_string(t):
        return column.cast(pa.string())
    if pa.types.is_large_string(t):
        return column.cast(pa.string())
    raise InvalidArgument.field(f"{what}.{name}", f"categorical column {name!r} holds {t}")


def label(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Targets and predictions: numbers as float64 (0/1 and 0.0/1.0 compare equal), else strings."""
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return column.cast(pa.float64())
    return column.cast(pa.string())


def normalise(table: pa.Table, config: MonitorConfig, what: str, *, partial: bool = False) -> pa.Table:
    """The monitored columns in schema order, cast to their kind's type. Unknown columns are refused
    (a typo would otherwise silently drop a feature); `partial` allows missing target/id/timestamp
    (a reference rarely has ids)."""
    known = known_columns(config)
    unknown = [n for n in table.column_names if n not in known]
    if unknown:
        raise InvalidArgument.field(
            f"{what}.{unknown[0]}",
            f"column {unknown[0]!r} is not in the monitor's schema (known: {', '.join(known)})",
        )
    missing = [c.name for c in config.columns if c.name not in table.column_names]
    if config.prediction and config.prediction not in table.column_names and not partial:
        missing.append(config.prediction)
    if config.id_column and config.id_column not in table.column_names and not partial:
        missing.append(config.id_column)
    if missing:
        raise InvalidArgument.field(f"{what}.{missing[0]}", f"column {missing[0]!r} is missing")
    if table.num_rows == 0:
        raise InvalidArgument.field(what, "no rows")
    arrays, names = [], []
    for c in config.columns:
        arrays.append(_cast(table, c.name, c.kind, what))
        names.append(c.name)
    for name in (config.prediction, config.target):
        if name and name in table.column_names:
            arrays.append(label(table.column(name)))
            names.append(name)
    if config.id_column and config.id_column in table.column_names:
        arrays.append(_id(table.column(config.id_column), f"{what}.{config.id_column}"))
        names.append(config.id_column)
    if config.timestamp_column and config.timestamp_column in table.column_names:
        arrays.append(table.column(config.timestamp_column))
        names.append(config.timestamp_column)
    return pa.table(arrays, names=names)


def _id(column: pa.ChunkedArray, field: str) -> pa.ChunkedArray:
    t = column.type
    if pa.types.is_integer(t):
        return column.cast(pa.int64())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return column.cast(pa.string())
    raise InvalidArgument.field(field, f"ids must be integers or strings, not {t}")


def ids(column: pa.ChunkedArray, field: str) -> pa.ChunkedArray:
    return _id(column, field)


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinities (the log refuses them): they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
