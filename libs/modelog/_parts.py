"""The parts of one client (`client.runs`, `client.models`, `client.artifacts`, ...): each is the
module-level API of that part bound to the client's connection, so a program that talks to two
servers (or as two users) holds two clients and never a second copy of any call."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelog._gen.tracking.v1 import tracking_pb2

if TYPE_CHECKING:
    from modelog._client import Connection
    from modelog._session import Client
    from modelog.tracking import ActiveRun, RunData


class Part:
    """`module`'s functions named in `names`, called with the client's connection as `keyword`."""

    def __init__(self, module: str, keyword: str, names: Sequence[str], connection: Connection) -> None:
        self._module, self._keyword, self._names, self._connection = (
            module,
            keyword,
            frozenset(names),
            connection,
        )

    def __getattr__(self, name: str) -> Any:
        if name not in self._names:
            raise AttributeError(
                f"{self._module} has no client call {name!r}; calls: {', '.join(sorted(self._names))}"
            )
        fn = getattr(importlib.import_module(self._module), name)
        bound = functools.partial(fn, **{self._keyword: self._connection})
        setattr(self, name, bound)
        return bound

    def __dir__(self) -> list[str]:
        return sorted(self._names)

    def __repr__(self) -> str:
        return f"<{self._module} on {self._connection.url}>"


class Experiments:
    """`client.experiments`: experiments as the tracking service keeps them (messages of its proto)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _call(self, rpc: str, request: Any) -> Any:
        return self._client._online().call(rpc, request)

    def create(
        self, name: str, description: str = "", tags: dict[str, str] | None = None, project: str = ""
    ) -> Any:
        req = tracking_pb2.CreateExperimentRequest(
            name=name, description=description, tags=tags or {}, project=project
        )
        return self._call("CreateExperiment", req).experiment

    def get(self, name: str) -> Any:
        return self._call("GetExperiment", tracking_pb2.GetExperimentRequest(name=name)).experiment

    def list(self, include_deleted: bool = False) -> list[Any]:
        view = tracking_pb2.VIEW_TYPE_ALL if include_deleted else tracking_pb2.VIEW_TYPE_ACTIVE_ONLY
        out: list[Any] = []
        token = ""
        while True:
            req = tracking_pb2.ListExperimentsRequest(view=view, page_size=1000, page_token=token)
            resp = self._call("ListExperiments", req)
            out.extend(resp.experiments)
            token = resp.next_page_token
            if not token:
                return out

    def delete(self, name: str) -> Any:
        req = tracking_pb2.DeleteExperimentRequest(experiment_id=self.get(name).experiment_id)
        return self._call("DeleteExperiment", req).experiment


class Runs:
    """`client.runs`: start, read, search and compare runs."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def start(self, experiment: str, **options: Any) -> ActiveRun:
        return self._client.start_run(experiment, **options)

    def get(self, run_id: str) -> RunData:
        return self._client.get_run(run_id)

    def search(self, experiments: str | Sequence[str], **options: Any) -> list[RunData]:
        return self._client.search_runs(experiments, **options)

    def metric_history(self, run_id: str, key: str, max_points: int = 0) -> list[tuple[int, float, int]]:
        return self._client.metric_history(run_id, key, max_points)

    def compare(self, run_ids: Sequence[str]) -> Any:
        return self._client.compare_runs(run_ids)


def artifacts(connection: Connection) -> Part:
    names = ("get", "open", "versions", "log_artifacts")
    return Part("modelog.artifacts", "conn", names, connection)


def webhooks(connection: Connection) -> Part:
    names = (
        "create",
        "get",
        "list",
        "update",
        "enable",
        "disable",
        "delete",
        "deliveries",
        "redeliver",
        "test",
    )
    return Part("modelog.webhooks", "connection", names, connection)


def audit(connection: Connection) -> Part:
    return Part("modelog.audit", "connection", ("export", "public_key", "subscribe", "replay"), connection)


def lineage(connection: Connection) -> Part:
    return Part("modelog.graph", "connection", ("lineage", "timeline"), connection)


def events(connection: Connection) -> Part:
    return Part("modelog.audit", "connection", ("subscribe", "replay"), connection)
