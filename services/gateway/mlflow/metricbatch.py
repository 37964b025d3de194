"""MLflow's `metrics` list (log-batch, log-metric) into our MetricBatch's columns: the stock client's
shape goes column by column, anything else point by point with the first bad field named."""

from __future__ import annotations

from typing import Any

from modelog._gen.tracking.v1 import tracking_pb2 as pb
from modelog_services.gateway.mlflow.common import invalid, missing, number

_FIELDS = frozenset({"key", "value", "timestamp", "step"})


def metric_columns(metrics: list[Any], batch: pb.MetricBatch) -> list[tuple[str, str, str]]:
    """MLflow's metrics list into the batch's columns; per point, the (model_id, dataset name, dataset
    digest) it was logged for. What the stock client sends (string keys, numbers, no model) goes
    column by column; anything else point by point, naming the first bad field. A point's key, value
    and timestamp are required, as MLflow's log-batch requires them."""
    try:
        if all(type(m) is dict and m.keys() <= _FIELDS for m in metrics):
            keys = [m["key"] for m in metrics]
            values = [m["value"] for m in metrics]
            steps = [m.get("step", 0) for m in metrics]
            stamps = [m["timestamp"] for m in metrics]
            if (
                all(type(k) is str for k in keys)
                and all(type(v) is float or type(v) is int for v in values)
                and all(type(x) is int for x in steps)
                and all(type(x) is int for x in stamps)
            ):
                batch.keys.extend(keys)
                batch.values.extend(values)
                batch.steps.extend(steps)
                batch.timestamps_ms.extend(stamps)
                return [("", "", "")] * len(keys)
    except (KeyError, ValueError):  # a missing key, or a step past 64 bits: said precisely below
        del batch.keys[:], batch.values[:], batch.steps[:], batch.timestamps_ms[:]
    models: list[tuple[str, str, str]] = []
    for i, m in enumerate(metrics):
        if not isinstance(m, dict) or m.get("key") in (None, ""):
            raise missing(f"metrics[{i}].key")
        if not isinstance(m["key"], str):
            raise invalid(f"metrics[{i}].key", m["key"])
        for required in ("value", "timestamp"):
            if m.get(required) in (None, ""):
                raise missing(f"metrics[{i}].{required}")
        batch.keys.append(m["key"])
        batch.values.append(number(m["value"], f"metrics[{i}].value"))
        batch.steps.append(_int(m.get("step", 0), f"metrics[{i}].step"))
        batch.timestamps_ms.append(_int(m["timestamp"], f"metrics[{i}].timestamp"))
        models.append(
            (
                str(m.get("model_id") or ""),
                str(m.get("dataset_name") or ""),
                str(m.get("dataset_digest") or ""),
            )
        )
    return models


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise invalid(name, value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(name, value) from None
