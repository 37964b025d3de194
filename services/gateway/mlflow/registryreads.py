"""What the registry translators read again and again: a model or a version that is not deleted,
every page of a search, a version number from a request, a run's artifact root, and the version a
`models:/` URI names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from eventlog.errors import InvalidArgument, NotFound
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog_services.gateway.mlflow.common import Body, Call
from modelog_services.gateway.mlflow.registryjson import canonical_stage, latest_per_stage, model_json
from modelog_services.gateway.mlflow.trackingjson import Experiments, run_info_json
from modelog_services.gateway.upstream import Upstream

PAGE = 1000  # the registry's largest page
MAX_SCAN = 100_000

LoggedModelLookup = Callable[[Call, str], Awaitable[tuple[str, str]]]
"""A logged model's (experiment id as MLflow shows it, source run id), from the logged-models translator."""


class RegistryReads:
    """The stubs and reads every part of the registry translator shares."""

    def __init__(self, upstream: Upstream, logged_models: LoggedModelLookup | None = None) -> None:
        self.stub = upstream.stub(registry_pb2_grpc.RegistryStub)
        self.tracking = upstream.stub(tracking_pb2_grpc.TrackingStub)
        self.artifacts = upstream.stub(artifacts_pb2_grpc.ArtifactsStub)
        self.ids = Experiments()
        self.logged_models = logged_models

    async def _model(self, call: Call, name: str) -> pb.Model:
        got = await call(self.stub.GetModel, pb.GetModelRequest(name=name))
        if got.model.deleted:
            raise NotFound(f"no model named {name!r} (it was deleted)")
        return got.model  # type: ignore[no-any-return]

    async def _version(self, call: Call, name: str, number: int) -> pb.ModelVersion:
        ref = pb.VersionRef(model=name, version=number)
        got = await call(self.stub.GetModelVersion, pb.GetModelVersionRequest(ref=ref))
        if got.version.status == pb.VERSION_STATUS_DELETED:
            raise NotFound(f"model {name!r} has no version {number} (it was deleted)")
        return got.version  # type: ignore[no-any-return]

    async def _every(self, call: Call, method: Any, request: Any, field: str) -> list[Any]:
        request.page_size = PAGE
        out: list[Any] = []
        while True:
            got = await call(method, request)
            out.extend(getattr(got, field))
            if not got.next_page_token:
                return out
            if len(out) >= MAX_SCAN:
                raise InvalidArgument.field("filter", f"more than {MAX_SCAN} matches; narrow the filter")
            request.page_token = got.next_page_token

    async def _versions_of(self, call: Call, name: str) -> list[pb.ModelVersion]:
        req = pb.SearchModelVersionsRequest(model=name)
        return await self._every(call, self.stub.SearchModelVersions, req, "versions")

    async def _with_latest(self, call: Call, m: pb.Model) -> Body:
        return model_json(m, latest_per_stage(await self._versions_of(call, m.name)))

    def _number(self, call: Call, field: str = "version") -> int:
        text = call.text(field, required=True)
        try:
            number = int(text)
        except ValueError:
            raise InvalidArgument.field(field, f"must be an integer version number, got {text!r}") from None
        if number < 1:
            raise InvalidArgument.field(field, f"must be a version number (1 or more), got {text!r}")
        return number

    async def _run_root(self, call: Call, run_id: str) -> str:
        got = await call(self.tracking.GetRun, tpb.GetRunRequest(run_id=run_id))
        await self.ids.default(call)
        return str(run_info_json(got.run.info, self.ids)["artifact_uri"])

    async def _by_models_uri(self, call: Call, rest: str) -> pb.ModelVersion:
        """The version `models:/<name>/<n>`, `models:/<name>@<alias>` or `models:/<name>/<stage>` names."""
        name, at, alias = rest.partition("@")
        if at:
            got = await call(self.stub.GetByAlias, pb.GetByAliasRequest(model=name, alias=alias))
            return got.version  # type: ignore[no-any-return]
        name, _, which = rest.rpartition("/")
        if which.isdigit():
            return await self._version(call, name, int(which))
        stages = () if which.lower() == "latest" else (canonical_stage(which),)
        found = latest_per_stage(await self._versions_of(call, name), stages)
        if not found:
            raise NotFound(f"model {name!r} has no version for {which!r}")
        return max(found, key=lambda v: v.version)
