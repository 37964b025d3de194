"""Modelog: experiment tracking, model registry and an audit log that is the data itself.

import modelog
modelog.connect()
with modelog.start_run(experiment="churn", params={"lr": 0.01}) as run:
    run.log_metrics({"loss": 0.3}, step=1)
modelog.search_runs("churn", filter="metrics.loss < 0.5", order_by=["metrics.loss ASC"])
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelog import webhooks
    from modelog._client import Connection
    from modelog._session import Client, OfflineError, connect
    from modelog.audit import replay, subscribe
    from modelog.graph import lineage, timeline
    from modelog.monitoring import monitors
    from modelog.registry import models, register_model
    from modelog.tracking import ActiveRun, RunData

# Names are imported on first use (PEP 562), as in eventlog: the server imports modelog.shared and
# modelog._gen, and an ingest worker or a service must not load the whole client to do so.
_WHERE = {
    "ActiveRun": "modelog.tracking",
    "Client": "modelog._session",
    "Connection": "modelog._client",
    "OfflineError": "modelog._session",
    "RunData": "modelog.tracking",
    "connect": "modelog._session",
    "default": "modelog._session",
    "lineage": "modelog.graph",
    "models": "modelog.registry",
    "monitors": "modelog.monitoring",
    "register_model": "modelog.registry",
    "replay": "modelog.audit",
    "subscribe": "modelog.audit",
    "timeline": "modelog.graph",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif not name.startswith("__"):
        try:  # a submodule (`modelog.errors`, `modelog.webhooks`) reached as an attribute
            value = importlib.import_module(f"modelog.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"modelog.{name}":
                raise
            raise AttributeError(f"module 'modelog' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'modelog' has no attribute {name!r}")
    globals()[name] = value
    return value


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


def _default() -> Client:
    from modelog._session import default

    return default()


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
    return _default().start_run(
        experiment, name=name, params=params, tags=tags, parent=parent, system_metrics=system_metrics
    )


def search_runs(
    experiments: str | Sequence[str],
    filter: str = "",
    order_by: Sequence[str] = (),
    max_results: int = 1000,
) -> list[RunData]:
    """MLflow filter syntax, plus OR, NOT and parentheses."""
    return _default().search_runs(experiments, filter, order_by, max_results)


def get_run(run_id: str) -> RunData:
    return _default().get_run(run_id)


def metric_history(run_id: str, key: str, max_points: int = 0) -> list[tuple[int, float, int]]:
    return _default().metric_history(run_id, key, max_points)


def compare_runs(run_ids: Sequence[str]) -> Any:
    return _default().compare_runs(run_ids)
