"""Model quality on a window once its labels are in: what a person compares with the baseline to tell
a drifting input from a decaying model. Same definitions as scikit-learn's defaults (binary metrics on
the positive label, macro averages for more classes, ROC AUC by ranks with ties halved)."""

from __future__ import annotations

import math
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from .drift_types import SchemaError, Task

Labels: TypeAlias = Any
"""A pyarrow Array or ChunkedArray."""


def _present(*arrays: Labels | None) -> npt.NDArray[np.bool_]:
    keep: npt.NDArray[np.bool_] | None = None
    for a in arrays:
        if a is None:
            continue
        valid = pc.is_valid(a)
        if pa.types.is_floating(a.type):
            valid = pc.and_(valid, pc.invert(pc.is_nan(a)))
        mask = np.asarray(
            valid.to_numpy(zero_copy_only=False) if isinstance(valid, pa.Array) else valid.to_numpy(),
            dtype=bool,
        )
        keep = mask if keep is None else keep & mask
    assert keep is not None
    return keep


def _numpy(a: Labels) -> npt.NDArray[np.generic]:
    return np.asarray(a.to_numpy(zero_copy_only=False) if isinstance(a, pa.Array) else a.to_numpy())


def _positive(labels: list[object], numeric: bool) -> object:
    """1 (or True) for numeric labels, as scikit-learn's pos_label=1; otherwise the last label in sorted
    order, the class scikit-learn's roc_auc_score treats as positive."""
    if numeric:
        return 1
    return sorted(labels, key=str)[-1]


def _classification(
    y_true: npt.NDArray[np.generic],
    y_pred: npt.NDArray[np.generic],
    y_score: npt.NDArray[np.float64] | None,
    numeric: bool,
) -> dict[str, float]:
    labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=str)
    out = {"accuracy": float(np.mean(y_true == y_pred))}

    def prf(label: object) -> tuple[float, float, float]:
        t, p = y_true == label, y_pred == label
        tp = float(np.sum(t & p))
        precision = tp / float(p.sum()) if p.any() else 0.0
        recall = tp / float(t.sum()) if t.any() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    if len(labels) <= 2:
        positive = _positive(labels, numeric)
        out["precision"], out["recall"], out["f1"] = prf(positive)
        if y_score is not None:
            is_pos = y_true == positive
            n_pos, n_neg = int(is_pos.sum()), int((~is_pos).sum())
            if n_pos and n_neg:
                ranks = stats.rankdata(y_score)
                out["roc_auc"] = float((ranks[is_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    else:
        per_class = np.array([prf(label) for label in labels])
        out["precision"], out["recall"], out["f1"] = (float(v) for v in per_class.mean(axis=0))
    return out


def performance(
    y_true: pa.Array, y_pred: pa.Array, task: Task, y_score: pa.Array | None = None
) -> dict[str, float]:
    """classification: accuracy, precision, recall, f1 (binary or macro), roc_auc when scores are given;
    regression: mae, rmse. Rows where y_true is null are left out."""
    if len(y_true) != len(y_pred) or (y_score is not None and len(y_score) != len(y_true)):
        raise SchemaError(
            f"labels, predictions{' and scores' if y_score is not None else ''} differ in length "
            f"({len(y_true)}, {len(y_pred)}{f', {len(y_score)}' if y_score is not None else ''})"
        )
    keep = _present(y_true, y_pred, y_score)
    if not keep.any():
        raise SchemaError("no row has both a label and a prediction")
    if task == "regression":
        if not (
            pa.types.is_integer(y_true.type)
            or pa.types.is_floating(y_true.type)
            or pa.types.is_decimal(y_true.type)
        ):
            raise SchemaError(f"regression labels must be numbers; they are {y_true.type}")
        truth = _numpy(y_true.cast(pa.float64()))[keep].astype(np.float64)
        guess = _numpy(y_pred.cast(pa.float64()))[keep].astype(np.float64)
        err = guess - truth
        return {"mae": float(np.mean(np.abs(err))), "rmse": float(math.sqrt(np.mean(err * err)))}
    if task != "classification":
        raise SchemaError(f"task {task!r} is neither classification nor regression")
    numeric = all(pa.types.is_integer(a.type) or pa.types.is_boolean(a.type) for a in (y_true, y_pred))
    if numeric:
        t, p = _numpy(y_true.cast(pa.int64()))[keep], _numpy(y_pred.cast(pa.int64()))[keep]
    else:
        t = np.asarray(_numpy(y_true.cast(pa.string()))[keep], dtype=object)
        p = np.asarray(_numpy(y_pred.cast(pa.string()))[keep], dtype=object)
    score = None if y_score is None else _numpy(y_score.cast(pa.float64()))[keep].astype(np.float64)
    return _classification(t, p, score, numeric)
