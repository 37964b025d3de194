"""The drift engine's public contract: what the monitoring service calls, and what reports are drawn from.

Pure computation (numpy/scipy/pyarrow, no I/O). The service stores a reference table as a Parquet blob and
keeps a `PreparedReference` in memory per monitor, so a window's drift never re-sorts the reference.
Every result type is JSON-able through `to_dict` so it can travel in `WindowProfiled` / `DriftDetected`
events (statistics, never rows).

CONTRACT (issue 9): the service is written against these names; the engine fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

ColumnKind = Literal["numerical", "categorical", "text"]
"""`text` columns are tested on their lengths (as numerical)."""
Task = Literal["classification", "regression"]

STATTESTS: tuple[str, ...] = ("ks", "wasserstein", "chisquare", "jensenshannon", "psi", "z")
"""Names accepted in `ColumnSpec.stattest` / `DriftOptions.stattest`; empty means Evidently's default."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: ColumnKind
    stattest: str = ""
    """Empty: chosen as Evidently chooses by default (by reference size and number of unique values)."""
    threshold: float | None = None
    """None: the test's default (p-value 0.05 for ks/chisquare/z; distance 0.1 otherwise)."""


@dataclass(frozen=True)
class Schema:
    columns: tuple[ColumnSpec, ...]
    prediction: str = ""
    target: str = ""
    task: Task | None = None
    id_column: str = ""
    timestamp_column: str = ""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        raise NotImplementedError


@dataclass(frozen=True)
class DriftOptions:
    drift_share: float = 0.5
    """Dataset drift when the share of drifted columns reaches this."""
    stattest: str = ""
    """Overrides the default test for every column without its own."""
    threshold: float | None = None


class SchemaError(ValueError):
    """A table does not fit the schema (missing column, wrong type, empty). The message names the column."""


def validate(table: pa.Table, schema: Schema, *, need_target: bool = False) -> None:
    """Raise SchemaError naming the first problem: missing or mistyped column, no rows."""
    raise NotImplementedError


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    kind: ColumnKind
    count: int
    missing_share: float
    # numerical / text length
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: tuple[float, ...] = ()
    """At 0, 0.05, 0.25, 0.5, 0.75, 0.95, 1."""
    bin_edges: tuple[float, ...] = ()
    bin_counts: tuple[int, ...] = ()
    # categorical
    frequencies: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def profile(
    table: pa.Table, schema: Schema, bin_edges: dict[str, tuple[float, ...]] | None = None
) -> list[ColumnProfile]:
    """Compact per-column profile. Windows pass the reference's bin edges so histograms line up."""
    raise NotImplementedError


class PreparedReference:
    """The reference table in the form the tests need (sorted numerical columns, category counts),
    plus its profile. Built once per monitor baseline."""

    def __init__(self, table: pa.Table, schema: Schema) -> None:
        raise NotImplementedError

    @property
    def rows(self) -> int:
        raise NotImplementedError

    @property
    def profiles(self) -> list[ColumnProfile]:
        raise NotImplementedError


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: ColumnKind
    stattest: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    missing_share: float
    new_categories: tuple[str, ...] = ()
    out_of_range_share: float = 0.0
    reference_hist: tuple[tuple[str, float], ...] = ()
    """(bin label or category, share) for the report; same bins for current."""
    current_hist: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class DriftResult:
    columns: tuple[ColumnDrift, ...]
    drift_share: float
    """Share of drifted columns."""
    dataset_drift: bool
    reference_rows: int
    current_rows: int

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftResult:
        raise NotImplementedError


def detect_drift(
    reference: PreparedReference, current: pa.Table, options: DriftOptions = DriftOptions()
) -> DriftResult:
    """Per-column tests on the schema's feature columns (and prediction), then the dataset verdict."""
    raise NotImplementedError


def performance(
    y_true: pa.Array, y_pred: pa.Array, task: Task, y_score: pa.Array | None = None
) -> dict[str, float]:
    """classification: accuracy, precision, recall, f1 (binary or macro), roc_auc when scores are given;
    regression: mae, rmse. Rows where y_true is null are left out."""
    raise NotImplementedError
