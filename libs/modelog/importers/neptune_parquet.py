"""The Parquet layer of the Neptune reader: the exporter's files, folders and row shapes (neptune.py
maps them onto the neutral records)."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modelog.importers.source import File

_PLAIN_TAG = re.compile(r"^[\w][\w.\- ]{0,249}\Z")
_SCALARS = {
    "float": "float_value",
    "int": "int_value",
    "string": "string_value",
    "bool": "bool_value",
    "datetime": "datetime_value",
    "string_set": "string_set_value",
}
_FILE_KINDS = ("file", "file_series", "file_set", "artifact")
_TEXT_SERIES = {"string_series": "string_value", "histogram_series": "histogram_value"}
_BULK_KINDS = ("float_series", "string_series", "histogram_series")
_KEYS = ["project_id", "run_id", "attribute_path", "attribute_type"]
_PART = re.compile(r"(?P<prefix>.+)_part_(?P<n>\d+)\.parquet")
_STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}
_COLUMN_KINDS: dict[str, Callable[[Any], bool]] = {
    "project_id": pa.types.is_string,
    "run_id": pa.types.is_string,
    "attribute_path": pa.types.is_string,
    "attribute_type": pa.types.is_string,
    "step": lambda t: pa.types.is_decimal(t) or pa.types.is_floating(t) or pa.types.is_integer(t),
    "timestamp": pa.types.is_timestamp,
    "int_value": pa.types.is_integer,
    "float_value": pa.types.is_floating,
    "string_value": pa.types.is_string,
    "bool_value": pa.types.is_boolean,
    "datetime_value": pa.types.is_timestamp,
    "string_set_value": lambda t: pa.types.is_list(t) and pa.types.is_string(t.value_type),
    "file_value": pa.types.is_struct,
    "histogram_value": pa.types.is_struct,
}


class NeptuneExportError(ValueError):
    """The export is not what Neptune's exporter writes, or a part of it is missing."""


def sanitize(part: str) -> str:
    """The exporter's file name for a project or run id: unsafe characters -> '_', plus a digest."""
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in part)
    return f"{safe}-{hashlib.blake2b(part.encode(), digest_size=8).hexdigest()}"


@dataclass(frozen=True)
class _FileRow:
    attribute: str
    kind: str
    step: Decimal | None
    path: str
    """Relative to the project's files directory."""


@dataclass(frozen=True)
class _Entity:
    """One exported container (a run, a model or a model version) without its series."""

    project_id: str
    id: str
    parts: tuple[Path, ...]
    scalars: dict[str, tuple[str, Any]]
    kinds: dict[str, str]
    """Series and file attributes: path -> attribute type."""
    files: tuple[_FileRow, ...]
    first_ms: int | None
    last_ms: int | None

    def get(self, path: str, kind: str) -> Any:
        found = self.scalars.get(path)
        return found[1] if found is not None and found[0] == kind else None


@dataclass(frozen=True)
class _Artifact:
    attribute: str
    kind: str
    disk: Path | None
    """The file on disk, or None for a series rendered on open."""


Arrays = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]


def _complete(directory: Path) -> dict[str, tuple[Path, ...]]:
    """Each complete container in a directory (its part_0 exists): file prefix -> parts in order."""
    if not directory.is_dir():
        raise NeptuneExportError(f"{directory}: no such directory in the export")
    parts: dict[str, list[tuple[int, Path]]] = {}
    for path in directory.iterdir():
        m = _PART.fullmatch(path.name)
        if m and path.is_file():
            parts.setdefault(m["prefix"], []).append((int(m["n"]), path))
    return {
        prefix: tuple(p for _, p in sorted(found))
        for prefix, found in sorted(parts.items())
        if min(found)[0] == 0
    }


def _open_parquet(path: Path, columns: list[str]) -> Any:
    try:
        f = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise NeptuneExportError(f"{path}: not a readable Parquet file ({e})") from e
    schema = f.schema_arrow
    for name in columns:
        if name not in schema.names:
            raise NeptuneExportError(f"{path}: no column {name!r}; this is not a Neptune exporter file")
        if not _COLUMN_KINDS[name](schema.field(name).type):
            raise NeptuneExportError(f"{path}: column {name!r} has type {schema.field(name).type}")
    return f


def _row_groups(path: Path, columns_for: Callable[[str | None], list[str] | None]) -> Iterator[Any]:
    """The part's row groups as tables. `columns_for` gets the group's only attribute type (known
    from its statistics: the exporter writes parameters, metrics, series and files in separate
    batches) or None when mixed, and says which columns to read, or None to skip the group."""
    f = _open_parquet(path, sorted({c for k in (None, *_BULK_KINDS) for c in columns_for(k) or []}))
    type_column = f.schema_arrow.get_field_index("attribute_type")
    for i in range(f.metadata.num_row_groups):
        stats = f.metadata.row_group(i).column(type_column).statistics
        only = stats.min if stats is not None and stats.has_min_max and stats.min == stats.max else None
        columns = columns_for(only)
        if columns is None:
            continue
        try:
            yield f.read_row_group(i, columns=columns)
        except (OSError, pa.ArrowException) as e:
            raise NeptuneExportError(f"{path}: row group {i} cannot be read ({e})") from e


def _first_project_id(part: Path) -> str:
    for table in _row_groups(part, lambda _kind: ["project_id"]):
        if table.num_rows:
            return str(table["project_id"][0].as_py())
    raise NeptuneExportError(f"{part}: empty (no rows to say which project it belongs to)")


def _scan(parts: tuple[Path, ...]) -> _Entity:
    """Everything about a container except its series points, in one streaming pass."""
    values = [*_SCALARS.values(), "step", "file_value"]
    full = [*_KEYS, "timestamp", *values]
    lean = [*_KEYS, "timestamp"]
    scalars: dict[str, tuple[str, Any]] = {}
    kinds: dict[str, str] = {}
    files: list[_FileRow] = []
    ids: tuple[str, str] | None = None
    first: int | None = None
    last: int | None = None
    for part in parts:
        for table in _row_groups(part, lambda kind: lean if kind in _BULK_KINDS else full):
            if table.num_rows == 0:
                continue
            ids = ids or (table["project_id"][0].as_py(), table["run_id"][0].as_py())
            low, high = pc.min_max(_ms(table["timestamp"])).values()
            if low.is_valid:
                first = low.as_py() if first is None else min(first, low.as_py())
                last = high.as_py() if last is None else max(last, high.as_py())
            types = table["attribute_type"]
            is_scalar = pc.is_in(types, value_set=pa.array(list(_SCALARS)))
            if "file_value" in table.column_names:
                table = table.set_column(
                    table.schema.get_field_index("datetime_value"),
                    "datetime_value",
                    _ms(table["datetime_value"]),
                )
                for row in (
                    table.filter(is_scalar).select(["attribute_path", "attribute_type", *values]).to_pylist()
                ):
                    kind = row["attribute_type"]
                    scalars[row["attribute_path"]] = (kind, row[_SCALARS[kind]])
                picked = table.filter(pc.is_in(types, value_set=pa.array(_FILE_KINDS)))
                for row in picked.select(
                    ["attribute_path", "attribute_type", "step", "file_value"]
                ).to_pylist():
                    if row["file_value"] and row["file_value"].get("path"):
                        step = None if row["step"] is None else Decimal(str(row["step"]))
                        files.append(
                            _FileRow(
                                row["attribute_path"], row["attribute_type"], step, row["file_value"]["path"]
                            )
                        )
            others = table.filter(pc.invert(is_scalar))
            for kind in pc.unique(others["attribute_type"]).to_pylist():
                same = others.filter(pc.equal(others["attribute_type"], kind))
                kinds.update(dict.fromkeys(pc.unique(same["attribute_path"]).to_pylist(), kind))
    if ids is None:
        raise NeptuneExportError(f"{parts[0]}: empty (no rows)")
    return _Entity(ids[0], ids[1], parts, scalars, kinds, tuple(files), first, last)


def _ms(column: Any) -> Any:
    """Timestamps (any unit) as int64 milliseconds since the epoch, nulls kept."""
    return pc.cast(column.cast(pa.timestamp("ms", tz=column.type.tz), safe=False), pa.int64())


def _int_steps(column: Any, scale: int, part: Path) -> np.ndarray[Any, Any]:
    if pa.types.is_integer(column.type):
        scaled = pc.multiply(column, scale)
    else:
        factor = (
            pa.scalar(Decimal(scale), pa.decimal128(18, 0)) if pa.types.is_decimal(column.type) else scale
        )
        scaled = pc.floor(pc.multiply(column, factor) if scale != 1 else column)
    try:
        return np.asarray(pc.cast(scaled, pa.int64()).to_numpy())
    except pa.ArrowException as e:
        raise NeptuneExportError(
            f"{part}: a step does not fit an int64 after scaling by {scale} ({e})"
        ) from e


def _text(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "datetime":
        return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="milliseconds")
    if kind == "string_set":
        return json.dumps(sorted(value or []), ensure_ascii=False)
    return str(value)


def _tags(e: _Entity, fields: set[str], *, include_user: bool) -> dict[str, str]:
    tags = {
        k: _text(t, v)
        for k, (t, v) in e.scalars.items()
        if k not in fields and (include_user or k.startswith("sys/"))
    }
    # Each tag is also a key of its own when it reads as one (all of them stay in sys/tags' JSON).
    tags.update(dict.fromkeys((t for t in e.get("sys/tags", "string_set") or [] if _PLAIN_TAG.match(t)), ""))
    return tags


def _listing(artifacts: dict[str, _Artifact]) -> Iterator[File]:
    for path, art in artifacts.items():
        yield File(path=path, size=art.disk.stat().st_size if art.disk is not None else None)


def _step_text(step: Decimal | None) -> str:
    return "none" if step is None else format(step.normalize(), "f")


def _artifact_name(row: _FileRow) -> str:
    name = PurePosixPath(row.path).name
    suffix = PurePosixPath(row.path).suffix
    if row.kind == "file_series":
        return f"{row.attribute}/step_{_step_text(row.step)}{suffix}"
    if row.kind == "artifact":
        return f"{row.attribute}/{name}"
    return row.attribute if not suffix or row.attribute.endswith(suffix) else row.attribute + suffix


def _render(parts: tuple[Path, ...], attribute: str, kind: str) -> bytes:
    """A string or histogram series as JSON Lines: {"step", "timestamp_ms", then the value}."""
    value = _TEXT_SERIES[kind]
    columns = ["attribute_path", "attribute_type", "step", "timestamp", value]
    out = io.StringIO()
    for part in parts:
        for table in _row_groups(part, lambda k: columns if k in (None, kind) else None):
            rows = table.filter(pc.equal(table["attribute_path"], attribute))
            rows = rows.set_column(
                rows.schema.get_field_index("timestamp"), "timestamp", _ms(rows["timestamp"])
            )
            for row in rows.to_pylist():
                step = "null" if row["step"] is None else _step_text(Decimal(str(row["step"])))
                if kind == "string_series":
                    payload = f'"value": {json.dumps(row[value], ensure_ascii=False)}'
                else:
                    h = row[value] or {}
                    payload = ", ".join(f'"{k}": {json.dumps(h.get(k))}' for k in ("type", "edges", "values"))
                out.write(f'{{"step": {step}, "timestamp_ms": {json.dumps(row["timestamp"])}, {payload}}}\n')
    return out.getvalue().encode()


def _version_number(version_id: str) -> int:
    tail = version_id.rsplit("-", 1)[-1]
    if not tail.isdigit():
        raise NeptuneExportError(f"model version id {version_id!r} does not end in a number")
    return int(tail)
