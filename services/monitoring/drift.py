"""The drift engine's public contract: what the monitoring service calls, and what reports are drawn from.

Pure computation (numpy/scipy/pyarrow, no I/O). The service stores a reference table as a Parquet blob and
keeps a `PreparedReference` in memory per monitor, so a window's drift never re-sorts the reference.
Every result type is JSON-able through `to_dict` so it can travel in `WindowProfiled` / `DriftDetected`
events (statistics, never rows).

Which test runs on a column, its threshold and its verdict follow Evidently 0.7.23's defaults (see
`stattests`), so a team moving from Evidently sees the same verdicts. The shapes live in `drift_types`,
the per-column work in `columns`, the metrics in `performance`; everything is imported from here.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import profiles as pf
from .columns import Categories, Numbers, category_profile, column_drift, numeric_profile
from .drift_types import (
    STATTESTS,
    ColumnDrift,
    ColumnKind,
    ColumnProfile,
    ColumnSpec,
    DriftOptions,
    DriftResult,
    Schema,
    SchemaError,
    Task,
)
from .performance import performance
from .validation import check_options, validate

__all__ = [
    "STATTESTS",
    "ColumnDrift",
    "ColumnKind",
    "ColumnProfile",
    "ColumnSpec",
    "DriftOptions",
    "DriftResult",
    "PreparedReference",
    "Schema",
    "SchemaError",
    "Task",
    "detect_drift",
    "detect_drift_and_profile",
    "performance",
    "profile",
    "validate",
]


def profile(
    table: pa.Table, schema: Schema, bin_edges: dict[str, tuple[float, ...]] | None = None
) -> list[ColumnProfile]:
    """Compact per-column profile. Windows pass the reference's bin edges so histograms line up."""
    validate(table, schema)
    out = []
    for spec in schema.tested():
        if spec.name not in table.column_names:
            continue
        column = table.column(spec.name)
        if spec.kind == "categorical":
            out.append(category_profile(spec, *pf.category_counts(column)))
        else:
            values, missing, _ = pf.numeric_values(column, text=spec.kind == "text")
            out.append(numeric_profile(spec, np.sort(values), missing, (bin_edges or {}).get(spec.name)))
    return out


class PreparedReference:
    """The reference table in the form the tests need (sorted numerical columns, category counts),
    plus its profile. Built once per monitor baseline."""

    def __init__(self, table: pa.Table, schema: Schema) -> None:
        validate(table, schema)
        self.schema = schema
        self._rows = int(table.num_rows)
        self._columns: dict[str, Numbers | Categories] = {}
        self._specs: dict[str, ColumnSpec] = {}
        profiles: list[ColumnProfile] = []
        for spec in schema.tested():
            if spec.name not in table.column_names:
                continue  # a prediction the reference does not carry is not tested
            column = table.column(spec.name)
            if spec.kind == "categorical":
                keys, counts, missing = pf.category_counts(column)
                if not keys:
                    raise SchemaError(
                        f"column {spec.name!r} has no values in the reference (all {missing} missing)"
                    )
                order = sorted(range(len(keys)), key=keys.__getitem__)
                keys = [keys[i] for i in order]
                counts = counts[order]
                self._columns[spec.name] = Categories(
                    keys, counts, {k: i for i, k in enumerate(keys)}, missing
                )
                profiles.append(category_profile(spec, keys, counts, missing))
            else:
                values, missing, integer = pf.numeric_values(column, text=spec.kind == "text")
                if values.size == 0:
                    raise SchemaError(
                        f"column {spec.name!r} has no values in the reference "
                        f"(all {missing} are missing or not finite)"
                    )
                numbers = Numbers.of(values, missing, integer)
                self._columns[spec.name] = numbers
                profiles.append(numeric_profile(spec, numbers.sorted, missing, None))
            self._specs[spec.name] = spec
        self._profiles = profiles

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def profiles(self) -> list[ColumnProfile]:
        return list(self._profiles)

    @property
    def bin_edges(self) -> dict[str, tuple[float, ...]]:
        """The reference's histogram edges per numerical column, for `profile` of a window."""
        return {p.name: p.bin_edges for p in self._profiles if p.bin_edges}


_DEFAULTS = DriftOptions()


def detect_drift(
    reference: PreparedReference, current: pa.Table, options: DriftOptions = _DEFAULTS
) -> DriftResult:
    """Per-column tests on the schema's feature columns (and prediction), then the dataset verdict."""
    return _detect(reference, current, options, want_profiles=False)[0]


def detect_drift_and_profile(
    reference: PreparedReference, current: pa.Table, options: DriftOptions = _DEFAULTS
) -> tuple[DriftResult, list[ColumnProfile]]:
    """`detect_drift` and the window's `profile` on the reference's bins in one pass: the profile
    reuses the sorted values and counts the tests made (a separate `profile` sorts everything again)."""
    result, profiles = _detect(reference, current, options, want_profiles=True)
    return result, [p for p in profiles if p is not None]


def _detect(
    reference: PreparedReference, current: pa.Table, options: DriftOptions, want_profiles: bool
) -> tuple[DriftResult, list[ColumnProfile | None]]:
    check_options(options, reference.schema)
    validate(current, reference.schema)
    edges = reference.bin_edges
    results, profiles = [], []
    for name, prepared in reference._columns.items():
        spec = reference._specs[name]
        if name not in current.column_names:
            if name == reference.schema.prediction:
                continue  # a window without predictions is tested on its features
            raise SchemaError(f"column {name!r} is missing from the window")
        drift, window_profile = column_drift(
            spec, prepared, current.column(name), options, edges.get(name), want_profiles
        )
        results.append(drift)
        profiles.append(window_profile)
    drifted = sum(r.drifted for r in results)
    share = drifted / len(results) if results else 0.0
    result = DriftResult(
        columns=tuple(results),
        drift_share=share,
        dataset_drift=bool(results) and share >= options.drift_share,
        reference_rows=reference.rows,
        current_rows=current.num_rows,
        drift_share_threshold=options.drift_share,
    )
    return result, profiles
