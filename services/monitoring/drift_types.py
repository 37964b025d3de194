"""The data shapes of the drift contract (re-exported by `drift`, which is where callers import them).

Kept apart from the computation so the per-column code, validation and metrics can share them without
import cycles. Every shape is JSON-able through `to_dict`; non-finite numbers (a chi-square against a
category the reference never saw is infinite) travel as the strings "inf", "-inf", "nan", because JSON
has no such numbers and pydantic would turn them into null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

ColumnKind = Literal["numerical", "categorical", "text"]
"""`text` columns are tested on their lengths (as numerical)."""
Task = Literal["classification", "regression"]

STATTESTS: tuple[str, ...] = ("ks", "wasserstein", "chisquare", "jensenshannon", "psi", "z")
"""Names accepted in `ColumnSpec.stattest` / `DriftOptions.stattest`; empty means Evidently's default."""


def _num(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _unnum(x: Any) -> float:
    return float(x)


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: ColumnKind
    stattest: str = ""
    """Empty: chosen as Evidently chooses by default (by reference size and number of unique values)."""
    threshold: float | None = None
    """None: the test's default (p-value 0.05 for ks/chisquare/z; distance 0.1 otherwise)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "stattest": self.stattest, "threshold": self.threshold}


@dataclass(frozen=True)
class Schema:
    columns: tuple[ColumnSpec, ...]
    prediction: str = ""
    target: str = ""
    task: Task | None = None
    id_column: str = ""
    timestamp_column: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "prediction": self.prediction,
            "target": self.target,
            "task": self.task,
            "id_column": self.id_column,
            "timestamp_column": self.timestamp_column,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        columns = []
        for c in data.get("columns", []):
            kind = c.get("kind")
            if kind not in get_args(ColumnKind):
                raise SchemaError(
                    f"column {c.get('name')!r}: kind {kind!r} is not one of {get_args(ColumnKind)}"
                )
            threshold = c.get("threshold")
            columns.append(
                ColumnSpec(
                    name=str(c["name"]),
                    kind=kind,
                    stattest=str(c.get("stattest") or ""),
                    threshold=None if threshold is None else float(threshold),
                )
            )
        task = data.get("task") or None
        if task is not None and task not in get_args(Task):
            raise SchemaError(f"task {task!r} is not one of {get_args(Task)}")
        return cls(
            columns=tuple(columns),
            prediction=str(data.get("prediction") or ""),
            target=str(data.get("target") or ""),
            task=task,
            id_column=str(data.get("id_column") or ""),
            timestamp_column=str(data.get("timestamp_column") or ""),
        )

    def tested(self) -> tuple[ColumnSpec, ...]:
        """The columns drift is tested on: the features, then the prediction (its kind from the task)."""
        names = {c.name for c in self.columns}
        if not self.prediction or self.prediction in names:
            return self.columns
        kind: ColumnKind = "numerical" if self.task == "regression" else "categorical"
        return (*self.columns, ColumnSpec(self.prediction, kind))


@dataclass(frozen=True)
class DriftOptions:
    drift_share: float = 0.5
    """Dataset drift when the share of drifted columns reaches this."""
    stattest: str = ""
    """Overrides the default test for every column without its own."""
    threshold: float | None = None


class SchemaError(ValueError):
    """A table does not fit the schema (missing column, wrong type, empty). The message names the column."""


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    kind: ColumnKind
    count: int
    """Values present (not missing)."""
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
    """Values outside the edges (a window against the reference's edges) are in no bin."""
    # categorical
    frequencies: dict[str, int] = field(default_factory=dict)
    """The most frequent categories (at most 100)."""
    missing: int = 0
    distinct: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "missing_share": self.missing_share,
            "distinct": self.distinct,
            "min": _num(self.min),
            "max": _num(self.max),
            "mean": _num(self.mean),
            "std": _num(self.std),
            "quantiles": [_num(q) for q in self.quantiles],
            "bin_edges": [_num(e) for e in self.bin_edges],
            "bin_counts": list(self.bin_counts),
            "frequencies": dict(self.frequencies),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnProfile:
        def opt(key: str) -> float | None:
            return None if data.get(key) is None else _unnum(data[key])

        return cls(
            name=data["name"],
            kind=data["kind"],
            count=int(data["count"]),
            missing_share=float(data["missing_share"]),
            min=opt("min"),
            max=opt("max"),
            mean=opt("mean"),
            std=opt("std"),
            quantiles=tuple(_unnum(q) for q in data.get("quantiles", ())),
            bin_edges=tuple(_unnum(e) for e in data.get("bin_edges", ())),
            bin_counts=tuple(int(c) for c in data.get("bin_counts", ())),
            frequencies={str(k): int(v) for k, v in data.get("frequencies", {}).items()},
            missing=int(data.get("missing", 0)),
            distinct=int(data.get("distinct", 0)),
        )


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: ColumnKind
    stattest: str
    statistic: float
    """ks: D; chisquare: chi²; z: z; the distances: the distance (the value compared to the threshold)."""
    p_value: float | None
    threshold: float
    drifted: bool
    missing_share: float
    new_categories: tuple[str, ...] = ()
    """Categories of the window the reference never saw, most frequent first (at most 50)."""
    out_of_range_share: float = 0.0
    """Share of the window's values outside the reference's [min, max]."""
    reference_hist: tuple[tuple[str, float], ...] = ()
    """(bin label or category, share) for the report; same bins for current."""
    current_hist: tuple[tuple[str, float], ...] = ()
    hist_edges: tuple[float, ...] = ()
    """Numerical columns: the edges of the histogram bins (len(hist) + 1)."""
    new_category_share: float = 0.0
    """Share of the window's values in a category the reference never saw."""
    note: str = ""
    """Why a column could not be tested (all missing in the window), for people."""

    @property
    def score(self) -> float:
        """What the threshold is compared with: the p-value for p-value tests, else the statistic."""
        return self.p_value if self.p_value is not None else self.statistic

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "stattest": self.stattest,
            "statistic": _num(self.statistic),
            "p_value": _num(self.p_value),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "missing_share": self.missing_share,
            "new_categories": list(self.new_categories),
            "new_category_share": self.new_category_share,
            "out_of_range_share": self.out_of_range_share,
            "reference_hist": [[label, share] for label, share in self.reference_hist],
            "current_hist": [[label, share] for label, share in self.current_hist],
            "hist_edges": [_num(e) for e in self.hist_edges],
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnDrift:
        return cls(
            column=data["column"],
            kind=data["kind"],
            stattest=data["stattest"],
            statistic=_unnum(data["statistic"]),
            p_value=None if data.get("p_value") is None else _unnum(data["p_value"]),
            threshold=float(data["threshold"]),
            drifted=bool(data["drifted"]),
            missing_share=float(data["missing_share"]),
            new_categories=tuple(data.get("new_categories", ())),
            out_of_range_share=float(data.get("out_of_range_share", 0.0)),
            reference_hist=tuple((str(k), float(v)) for k, v in data.get("reference_hist", ())),
            current_hist=tuple((str(k), float(v)) for k, v in data.get("current_hist", ())),
            hist_edges=tuple(_unnum(e) for e in data.get("hist_edges", ())),
            new_category_share=float(data.get("new_category_share", 0.0)),
            note=str(data.get("note", "")),
        )


@dataclass(frozen=True)
class DriftResult:
    columns: tuple[ColumnDrift, ...]
    drift_share: float
    """Share of drifted columns."""
    dataset_drift: bool
    reference_rows: int
    current_rows: int
    drift_share_threshold: float = 0.5
    """The share the verdict was taken against (`DriftOptions.drift_share`)."""

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns if c.drifted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "drift_share_threshold": self.drift_share_threshold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftResult:
        return cls(
            columns=tuple(ColumnDrift.from_dict(c) for c in data["columns"]),
            drift_share=float(data["drift_share"]),
            dataset_drift=bool(data["dataset_drift"]),
            reference_rows=int(data["reference_rows"]),
            current_rows=int(data["current_rows"]),
            drift_share_threshold=float(data.get("drift_share_threshold", 0.5)),
        )
