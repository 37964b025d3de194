"""Where a metric logged for an MLflow logged model lives: a point of the run under a reserved key.

MLflow 3 keeps a model's metrics beside the run's (`log_metric(..., model_id=...)` writes both). Here
both are tracking points of the run, written in one LogMetricsBatch call (one validation, one
idempotency key, the chunked store): the run's under the key as given, the model's under
`modelog.mlflow.model/<model id>/<dataset ref>/<key>`. The dataset reference is "-" or a short digest
of (dataset name, dataset digest), which the model's metadata maps back (models.py). Run views hide
keys under `modelog.mlflow.` as they hide such tags.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from typing import Protocol

from eventlog.errors import InvalidArgument
from modelog_services.gateway.mlflow.common import Call

PREFIX = "modelog.mlflow.model/"
MAX_KEY = 250  # tracking's key limit (services/tracking/checks.py), MLflow's too
NO_DATASET = "-"

DatasetRefs = dict[str, tuple[str, str]]
"""Reference -> (dataset name, dataset digest)."""


class ModelMetricLinks(Protocol):
    """What the tracking routes ask of the logged models (models.LoggedModels)."""

    def check_model(self, call: Call, model_id: str) -> Awaitable[None]: ...

    def note_metrics(
        self, call: Call, model_id: str, run_id: str, datasets: DatasetRefs
    ) -> Awaitable[None]: ...


def metric_prefix(model_id: str) -> str:
    return f"{PREFIX}{model_id}/"


def dataset_ref(name: str | None, digest: str | None) -> str:
    if not name and not digest:
        return NO_DATASET
    return "d" + hashlib.sha256(f"{name or ''}\x00{digest or ''}".encode()).hexdigest()[:16]


def model_key(model_id: str, ref: str, key: str, field: str) -> str:
    if not model_id.startswith("m-") or "/" in model_id:
        raise InvalidArgument.field(
            field.replace("key", "model_id"), f"{model_id!r} is not a logged model id"
        )
    composed = f"{metric_prefix(model_id)}{ref}/{key}"
    if len(composed) > MAX_KEY:
        room = MAX_KEY - len(composed) + len(key)
        raise InvalidArgument.field(
            field, f"metric key is {len(key)} characters long; logged for a model the limit is {room}"
        )
    return composed


def parse_model_key(key: str) -> tuple[str, str, str] | None:
    """(model id, dataset ref, key) of a reserved key, else None."""
    if not key.startswith(PREFIX):
        return None
    parts = key[len(PREFIX) :].split("/", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None
