"""From Arrow columns to what the tests read: clean numbers (sorted) or category counts.

Missing means null, and for numbers also NaN and ±infinity (Evidently drops infinities with the NaNs
before testing); a missing value is counted, never tested.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Floats = npt.NDArray[np.float64]
Counts = npt.NDArray[np.int64]
Column: TypeAlias = Any
"""A pyarrow Array or ChunkedArray (pyarrow ships no type information)."""

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
PROFILE_BINS = 20
PROFILE_TOP_CATEGORIES = 100


def is_number_type(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t)
    )


def is_string_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return is_string_type(t.value_type)
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def is_category_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return is_category_type(t.value_type)
    return is_string_type(t) or is_number_type(t)


def numeric_values(column: Column, text: bool = False) -> tuple[Floats, int, bool]:
    """(the finite values as float64, how many are missing, whether the source was integer).
    `text` columns are measured by their length in characters."""
    if pa.types.is_null(column.type):
        return np.empty(0, dtype=np.float64), len(column), False
    if text:
        if pa.types.is_dictionary(column.type) or pa.types.is_string_view(column.type):
            column = column.cast(pa.large_string())  # utf8_length has no kernel for these
        column = pc.utf8_length(column)
    integer = bool(pa.types.is_integer(column.type) or pa.types.is_boolean(column.type))
    if column.type != pa.float64():
        column = column.cast(pa.float64())
    values = (
        column.to_numpy(zero_copy_only=False) if isinstance(column, pa.Array) else _chunked_floats(column)
    )
    finite = np.isfinite(values)
    if finite.all():
        return values, 0, integer
    return values[finite], len(values) - int(finite.sum()), integer


def _chunked_floats(column: pa.ChunkedArray) -> Floats:
    if column.num_chunks == 1:
        return np.asarray(column.chunk(0).to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.asarray(column.to_numpy(), dtype=np.float64)


def category_counts(column: Column) -> tuple[list[str], Counts, int]:
    """(categories as strings, their counts, how many are missing). Numbers and booleans become their
    text form, so a category is compared by what a person reads."""
    if pa.types.is_null(column.type):
        return [], np.empty(0, dtype=np.int64), len(column)
    counted = pc.value_counts(column)
    values = counted.field("values")
    counts = np.asarray(counted.field("counts").to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    missing_mask = values.is_null()
    if pa.types.is_floating(values.type):
        missing_mask = pc.or_kleene(missing_mask, pc.is_nan(values))  # null or NaN; plain or_ gives null
    missing = np.asarray(missing_mask.to_numpy(zero_copy_only=False), dtype=bool)
    if not is_string_type(values.type):
        values = values.cast(pa.string())
    keys = values.to_pylist()
    if missing.any():
        keep = ~missing
        return (
            [k for k, m in zip(keys, missing, strict=True) if not m],
            counts[keep],
            int(counts[missing].sum()),
        )
    return keys, counts, 0


def distinct_sorted(sorted_values: Floats) -> tuple[Floats, Counts]:
    """Distinct values of a sorted sample and how often each occurs."""
    if sorted_values.size == 0:
        return sorted_values, np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    counts = np.diff(np.append(starts, sorted_values.size)).astype(np.int64)
    return sorted_values[starts], counts


def count_distinct_sorted(sorted_values: Floats) -> int:
    if sorted_values.size == 0:
        return 0
    return int(np.count_nonzero(sorted_values[1:] != sorted_values[:-1])) + 1


def quantiles_sorted(sorted_values: Floats) -> tuple[float, ...]:
    """np.quantile's default (linear, with numpy's lerp) read straight off a sorted sample: np.quantile
    itself would partition the whole array again."""
    n = sorted_values.size
    out = []
    for q in QUANTILES:
        position = q * (n - 1)
        below = min(int(np.floor(position)), n - 1)
        above = min(below + 1, n - 1)
        t = position - below
        a, b = float(sorted_values[below]), float(sorted_values[above])
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
    return tuple(out)


def equal_edges(lo: float, hi: float, bins: int = PROFILE_BINS) -> Floats:
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1, dtype=np.float64)


def fmt(x: float) -> str:
    """A number as a person reads it on an axis: 4 significant digits, no float noise."""
    if x == 0:
        return "0"
    return f"{x:.4g}"
