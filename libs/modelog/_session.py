"""The client object behind the module-level API (`modelog.connect()`, `modelog.start_run()`)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelog import _parts
from modelog._client import Connection, remember
from modelog._gen.tracking.v1 import tracking_pb2
from modelog._transport import Journal, Online, Transport
from modelog.errors import FailedPrecondition
from modelog.shared.settings import Settings
from modelog.tracking import ActiveRun, RunData, start_run

if TYPE_CHECKING:
    from modelog.monitoring import Monitors
    from modelog.registry import Models


class OfflineError(FailedPrecondition, RuntimeError):
    """A read (search, get) asked of an offline client: reads need the server."""


class Client:
    """One connection for a whole program. Online by default; offline journals to disk."""

    def __init__(self, url: str | None = None, token: str | None = None, offline: bool | None = None) -> None:
        settings = Settings()
        if offline is None:
            offline = os.environ.get("MODELOG_MODE", "").lower() == "offline"
        self.home = settings.home
        self.transport: Transport
        if offline:
            self.transport = Journal(self.home / "offline")
        else:
            self.transport = Online(Connection(url, token))

    @property
    def offline(self) -> bool:
        return self.transport.offline

    def _online(self) -> Online:
        if not isinstance(self.transport, Online):
            raise OfflineError("this client is offline: reads need the server (run `modelog sync` first)")
        return self.transport

    def start_run(
        self,
        experiment: str,
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent: ActiveRun | str | None = None,
        system_metrics: bool | float = False,
    ) -> ActiveRun:
        """`system_metrics`: True (every 10 s) or an interval in seconds to sample CPU/memory/GPU."""
        return start_run(
            self.transport,
            experiment,
            name=name,
            params=params,
            tags=tags,
            parent=parent,
            spill_dir=self.home / "spill",
            system_metrics=system_metrics,
        )

    def get_run(self, run_id: str) -> RunData:
        resp = self._online().call("GetRun", tracking_pb2.GetRunRequest(run_id=run_id))
        return RunData.of(resp.run)

    def search_runs(
        self,
        experiments: str | Sequence[str],
        filter: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
    ) -> list[RunData]:
        names = [experiments] if isinstance(experiments, str) else list(experiments)
        ids = [self._experiment_id(n) for n in names]
        out: list[RunData] = []
        token = ""
        while len(out) < max_results:
            resp = self._online().call(
                "SearchRuns",
                tracking_pb2.SearchRunsRequest(
                    experiment_ids=ids,
                    filter=filter,
                    order_by=list(order_by),
                    page_size=min(1000, max_results - len(out)),
                    page_token=token,
                ),
            )
            out.extend(RunData.of(r) for r in resp.runs)
            token = resp.next_page_token
            if not token:
                break
        return out

    def _experiment_id(self, name_or_id: str) -> str:
        resp = self._online().call("GetExperiment", tracking_pb2.GetExperimentRequest(name=name_or_id))
        return str(resp.experiment.experiment_id)

    def metric_history(self, run_id: str, key: str, max_points: int = 0) -> list[tuple[int, float, int]]:
        """(step, value, timestamp_ms) points; with max_points, a downsampled series keeping extremes."""
        resp = self._online().call(
            "GetMetricHistory",
            tracking_pb2.GetMetricHistoryRequest(run_id=run_id, key=key, max_points=max_points),
        )
        return list(zip(resp.steps, resp.values, resp.timestamps_ms, strict=True))

    def compare_runs(self, run_ids: Sequence[str]) -> tracking_pb2.CompareRunsResponse:
        resp: tracking_pb2.CompareRunsResponse = self._online().call(
            "CompareRuns", tracking_pb2.CompareRunsRequest(run_ids=list(run_ids))
        )
        return resp

    # ------------------------------------------------------------ the parts, on this client's connection

    @property
    def connection(self) -> Connection:
        return self._online().conn

    @functools.cached_property
    def experiments(self) -> _parts.Experiments:
        return _parts.Experiments(self)

    @functools.cached_property
    def runs(self) -> _parts.Runs:
        return _parts.Runs(self)

    @functools.cached_property
    def models(self) -> Models:
        from modelog.registry import Models

        return Models(self.connection)

    @functools.cached_property
    def monitors(self) -> Monitors:
        from modelog.monitoring import Monitors

        return Monitors(self.connection)

    @functools.cached_property
    def artifacts(self) -> _parts.Part:
        return _parts.artifacts(self.connection)

    @functools.cached_property
    def webhooks(self) -> _parts.Part:
        return _parts.webhooks(self.connection)

    @functools.cached_property
    def audit(self) -> _parts.Part:
        return _parts.audit(self.connection)

    @functools.cached_property
    def lineage(self) -> _parts.Part:
        return _parts.lineage(self.connection)

    @functools.cached_property
    def events(self) -> _parts.Part:
        return _parts.events(self.connection)

    def close(self) -> None:
        self.transport.close()


_default: Client | None = None


def connect(url: str | None = None, token: str | None = None, *, offline: bool | None = None) -> Client:
    """Connect the module-level API (MODELOG_URL / MODELOG_TOKEN; the embedded stack by default)."""
    global _default
    if _default is not None:
        _default.close()
    remember(url, token)  # the audit, lineage, artifacts and webhooks parts connect there too
    _default = Client(url, token, offline)
    return _default


def default() -> Client:
    return _default or connect()


def spill_dir() -> Path:
    return default().home / "spill"
