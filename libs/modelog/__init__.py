"""Modelog: experiment tracking, model registry and an audit log that is the data itself.

import modelog
modelog.connect()
with modelog.start_run(experiment="churn", params={"lr": 0.01}) as run:
    run.log_metrics({"loss": 0.3}, step=1)
modelog.search_runs("churn", filter="metrics.loss < 0.5", order_by=["metrics.loss ASC"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelog import webhooks
from modelog._client import Connection
from modelog._session import Client, OfflineError, connect, default
from modelog.audit import replay, subscribe
from modelog.graph import lineage, timeline
from modelog.monitoring import monitors
from modelog.registry import models, register_model
from modelog.tracking import ActiveRun, RunData

__all__ = [
    "ActiveRun",
    "Client",
    "Connection",
    "OfflineError",
    "RunData",
    "compare_runs",
    "connect",
    "get_run",
    "lineage",
    "metric_history",
    "models",
    "monitors",
    "register_model",
    "replay",
    "search_runs",
    "start_run",
    "subscribe",
    "timeline",
    "webhooks",
]
__version__ = "0.1.0"


def start_run(
    experiment: str,
    *,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    parent: ActiveRun | str | None = None,
    system_metrics: bool | float = False,
) -> ActiveRun:
    """Start a run in `experiment` (created if missing); use it as a context manager."""
    return default().start_run(
        experiment, name=name, params=params, tags=tags, parent=parent, system_metrics=system_metrics
    )


def search_runs(
    experiments: str | Sequence[str],
    filter: str = "",
    order_by: Sequence[str] = (),
    max_results: int = 1000,
) -> list[RunData]:
    """MLflow filter syntax, plus OR, NOT and parentheses."""
    return default().search_runs(experiments, filter, order_by, max_results)


def get_run(run_id: str) -> RunData:
    return default().get_run(run_id)


def metric_history(run_id: str, key: str, max_points: int = 0) -> list[tuple[int, float, int]]:
    return default().metric_history(run_id, key, max_points)


def compare_runs(run_ids: Sequence[str]) -> Any:
    return default().compare_runs(run_ids)
