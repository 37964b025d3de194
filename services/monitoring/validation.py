"""Does a table fit a monitor's schema, and do the options make sense? Every message names the column
and says what was expected, so a person can fix the input without reading code."""

from __future__ import annotations

import math
from collections import Counter

import pyarrow as pa

from . import profiles as pf
from . import stattests as st
from .drift_types import STATTESTS, DriftOptions, Schema, SchemaError, Task

_LISTED = 12


def _names(table: pa.Table) -> str:
    names = table.column_names
    if not names:
        return "no columns"
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _check_test(where: str, kind: str, stattest: str, threshold: float | None) -> None:
    if stattest:
        if stattest not in STATTESTS:
            raise SchemaError(
                f"{where}: unknown stattest {stattest!r} "
                f"(one of {', '.join(STATTESTS)}, or empty for the default)"
            )
        allowed = st.CATEGORICAL_TESTS if kind == "categorical" else st.NUMERICAL_TESTS
        if stattest not in allowed:
            raise SchemaError(
                f"{where}: stattest {stattest!r} cannot test a {kind} column "
                f"(use one of {', '.join(sorted(allowed))})"
            )
    if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
        raise SchemaError(f"{where}: threshold {threshold} must be a positive number")


def _check_type(name: str, kind: str, t: pa.DataType) -> None:
    if pa.types.is_null(t):
        return  # all missing: counted as such, never a type error
    if kind == "categorical":
        ok, expected = pf.is_category_type(t), "strings, integers, booleans or a dictionary of them"
    elif kind == "text":
        ok, expected = pf.is_string_type(t), "strings"
    else:
        ok, expected = pf.is_number_type(t), "numbers (integer, floating point, decimal or boolean)"
    if not ok:
        raise SchemaError(f"column {name!r} is {kind}, so it must hold {expected}; it holds {t}")


def _check_label(role: str, name: str, task: Task | None, t: pa.DataType) -> None:
    kind = "numerical" if task == "regression" else "categorical"
    try:
        _check_type(name, kind, t)
    except SchemaError as exc:
        raise SchemaError(f"{role} {exc}") from None


def validate(
    table: pa.Table,
    schema: Schema,
    *,
    need_target: bool = False,
    need_prediction: bool = False,
    allow_extra: bool = True,
) -> None:
    """Raise SchemaError naming the first problem: missing or mistyped column, no rows."""
    dupes = [n for n, k in Counter(c.name for c in schema.columns).items() if k > 1]
    if dupes:
        raise SchemaError(f"column {dupes[0]!r} appears more than once in the schema")
    for spec in schema.columns:
        if spec.kind not in ("numerical", "categorical", "text"):
            raise SchemaError(
                f"column {spec.name!r}: kind {spec.kind!r} is not numerical, categorical or text"
            )
        _check_test(f"column {spec.name!r}", spec.kind, spec.stattest, spec.threshold)
    present = Counter(table.column_names)
    for name, k in present.items():
        if k > 1:
            raise SchemaError(f"column {name!r} appears {k} times in the table")
    for spec in schema.columns:
        if spec.name not in present:
            raise SchemaError(f"column {spec.name!r} is missing from the table (it has {_names(table)})")
        _check_type(spec.name, spec.kind, table.schema.field(spec.name).type)
    for role, name, needed in (
        ("prediction", schema.prediction, need_prediction),
        ("target", schema.target, need_target),
    ):
        if needed and not name:
            raise SchemaError(f"the schema names no {role} column")
        if name and name in present:
            _check_label(role, name, schema.task, table.schema.field(name).type)
        elif needed:
            raise SchemaError(f"{role} column {name!r} is missing from the table (it has {_names(table)})")
    if not allow_extra:
        known = {c.name for c in schema.columns} | {
            schema.prediction,
            schema.target,
            schema.id_column,
            schema.timestamp_column,
        }
        extra = [n for n in table.column_names if n not in known]
        if extra:
            raise SchemaError(f"column {extra[0]!r} is not in the monitor's schema")
    if table.num_rows == 0:
        raise SchemaError("the table has no rows")


def check_options(options: DriftOptions, schema: Schema) -> None:
    """The global override must suit every column that has no test of its own."""
    if not (math.isfinite(options.drift_share) and 0 < options.drift_share <= 1):
        raise SchemaError(f"drift_share {options.drift_share} must be in (0, 1]")
    _check_test("options", "numerical", "", options.threshold)
    if options.stattest:
        for spec in schema.tested():
            if not spec.stattest:
                _check_test(
                    f"column {spec.name!r} (stattest from the options)", spec.kind, options.stattest, None
                )
