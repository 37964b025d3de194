"""MLflow's model registry endpoints as calls to our Registry service (and Tracking/Artifacts reads):
the registered-model endpoints and the routes of all. Versions are in `registryversions`, stage
transitions in `registrystages`, the JSON shapes in `registryjson`.

Decisions, each a translation rather than a rule of our own:

- **Deletes.** MLflow frees a model's name on delete; our registry keeps a deleted model's name. So
  registered-models/delete renames the model to `<name>.deleted-<model_id>` and then deletes it (two
  audited events; time travel finds the old name). Deleted models and versions are
  RESOURCE_DOES_NOT_EXIST here. Versions in Production or with an alias are not deleted (the registry's
  rule protects deployments): INVALID_STATE says what to do first. Deleting a missing tag or alias is a
  no-op, as in MLflow.
- **Search.** filter and order_by go to the registry's SearchModels/SearchModelVersions as they are
  (the one grammar every search shares, with OR, NOT and parentheses besides MLflow's): the registry
  filters, orders and pages in SQL, and its page token is the one MLflow's client sends back. The
  gateway adds only MLflow's defaults (models by name, versions by last update, deleted models
  hidden) and its translations (a version's `source_path` is the `modelog.mlflow.source` tag). An
  exact `name = 'x'` that no model can be called matches nothing, as in MLflow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from starlette.routing import BaseRoute

from eventlog.errors import InvalidArgument, NotFound
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog_services.gateway.mlflow.common import Body, Call, key_values, route
from modelog_services.gateway.mlflow.registryjson import latest_per_stage, model_json, version_json
from modelog_services.gateway.mlflow.registryreads import LoggedModelLookup
from modelog_services.gateway.mlflow.registrystages import StageHandlers
from modelog_services.gateway.mlflow.registryversions import VersionHandlers
from modelog_services.gateway.mlflow.search import client_filter
from modelog_services.gateway.upstream import Upstream

__all__ = ["LoggedModelLookup", "Registry", "routes"]


class Registry(VersionHandlers, StageHandlers):
    """Every MLflow registry endpoint; this class adds the registered models'."""

    async def create_model(self, call: Call) -> Body:
        tags = key_values(call.fields.get("tags"), "tags")
        request = pb.CreateModelRequest(
            name=call.text("name", required=True), description=call.text("description"), tags=tags
        )
        got = await call(self.stub.CreateModel, request)
        return {"registered_model": model_json(got.model)}

    async def get_model(self, call: Call) -> Body:
        m = await self._model(call, call.text("name", required=True))
        return {"registered_model": await self._with_latest(call, m)}

    async def search_models(self, call: Call) -> Body:
        size = call.max_results(100, 1000)
        request = pb.SearchModelsRequest(
            filter=client_filter(call.text("filter")),
            order_by=[*map(str, call.items("order_by")), "name ASC"],  # MLflow: by name, then as asked
            page_size=size,
            page_token=call.text("page_token"),
        )
        got = await call(self.stub.SearchModels, request)
        out: Body = {}
        if got.models:
            out["registered_models"] = await _gather(self._with_latest(call, m) for m in got.models)
        if got.next_page_token:
            out["next_page_token"] = got.next_page_token
        return out

    async def update_model(self, call: Call) -> Body:
        request = pb.SetModelDescriptionRequest(
            name=call.text("name", required=True), description=call.text("description")
        )
        got = await call(self.stub.SetModelDescription, request)
        return {"registered_model": model_json(got.model)}

    async def rename_model(self, call: Call) -> Body:
        request = pb.RenameModelRequest(
            name=call.text("name", required=True), new_name=call.text("new_name", required=True)
        )
        got = await call(self.stub.RenameModel, request)
        return {"registered_model": model_json(got.model)}

    async def delete_model(self, call: Call) -> Body:
        m = await self._model(call, call.text("name", required=True))
        if m.production_versions:  # refused either way: let the registry say why, with nothing renamed
            await call(self.stub.DeleteModel, pb.DeleteModelRequest(name=m.name))
            return {}
        suffix = f".deleted-{m.model_id}"
        tombstone = m.name[: 250 - len(suffix)].rstrip(" ") + suffix
        await call(self.stub.RenameModel, pb.RenameModelRequest(name=m.name, new_name=tombstone))
        try:
            await call(self.stub.DeleteModel, pb.DeleteModelRequest(name=tombstone))
        except Exception:
            await call(self.stub.RenameModel, pb.RenameModelRequest(name=tombstone, new_name=m.name))
            raise
        return {}

    async def set_model_tag(self, call: Call) -> Body:
        tags = {call.text("key", required=True): call.text("value")}
        await call(
            self.stub.SetModelTags, pb.SetModelTagsRequest(name=call.text("name", required=True), tags=tags)
        )
        return {}

    async def delete_model_tag(self, call: Call) -> Body:
        m = await self._model(call, call.text("name", required=True))
        key = call.text("key", required=True)
        if key in m.tags:
            await call(self.stub.SetModelTags, pb.SetModelTagsRequest(name=m.name, delete_keys=[key]))
        return {}

    async def latest_versions(self, call: Call) -> Body:
        m = await self._model(call, call.text("name", required=True))
        stages = [str(s) for s in call.items("stages")]
        found = latest_per_stage(await self._versions_of(call, m.name), stages)
        return {"model_versions": [version_json(v) for v in found]} if found else {}

    async def set_alias(self, call: Call) -> Body:
        request = pb.SetAliasRequest(
            model=call.text("name", required=True),
            alias=call.text("alias", required=True),
            version=self._number(call),
        )
        await call(self.stub.SetAlias, request)
        return {}

    async def delete_alias(self, call: Call) -> Body:
        m = await self._model(call, call.text("name", required=True))
        alias = call.text("alias", required=True)
        if alias in m.aliases:
            await call(self.stub.RemoveAlias, pb.RemoveAliasRequest(model=m.name, alias=alias))
        return {}

    async def get_by_alias(self, call: Call) -> Body:
        name, alias = call.text("name", required=True), call.text("alias", required=True)
        try:
            got = await call(self.stub.GetByAlias, pb.GetByAliasRequest(model=name, alias=alias))
        except NotFound:
            await self._model(call, name)  # no such model: RESOURCE_DOES_NOT_EXIST
            # MLflow answers a missing alias with INVALID_PARAMETER_VALUE, and clients rely on it.
            raise InvalidArgument.field(
                "alias", f"registered model {name!r} has no alias {alias!r}"
            ) from None
        return {"model_version": version_json(got.version)}


async def _gather(items: Any, limit: int = 16) -> list[Body]:
    gate = asyncio.Semaphore(limit)

    async def one(item: Awaitable[Body]) -> Body:
        async with gate:
            return await item

    return list(await asyncio.gather(*(one(i) for i in items)))


def routes(upstream: Upstream, logged_models: LoggedModelLookup | None = None) -> list[BaseRoute]:
    r = Registry(upstream, logged_models)
    table: list[tuple[str, list[str], Any]] = [
        ("/registered-models/create", ["POST"], r.create_model),
        ("/registered-models/get", ["GET"], r.get_model),
        ("/registered-models/search", ["GET"], r.search_models),
        ("/registered-models/update", ["PATCH"], r.update_model),
        ("/registered-models/rename", ["POST"], r.rename_model),
        ("/registered-models/delete", ["DELETE"], r.delete_model),
        ("/registered-models/set-tag", ["POST"], r.set_model_tag),
        ("/registered-models/delete-tag", ["DELETE"], r.delete_model_tag),
        ("/registered-models/get-latest-versions", ["POST", "GET"], r.latest_versions),
        ("/registered-models/alias", ["POST"], r.set_alias),
        ("/registered-models/alias", ["DELETE"], r.delete_alias),
        ("/registered-models/alias", ["GET"], r.get_by_alias),
        ("/model-versions/create", ["POST"], r.create_version),
        ("/model-versions/get", ["GET"], r.get_version),
        ("/model-versions/search", ["GET"], r.search_versions),
        ("/model-versions/update", ["PATCH"], r.update_version),
        ("/model-versions/delete", ["DELETE"], r.delete_version),
        ("/model-versions/transition-stage", ["POST"], r.transition_stage),
        ("/model-versions/get-download-uri", ["GET"], r.download_uri),
        ("/model-versions/set-tag", ["POST"], r.set_version_tag),
        ("/model-versions/delete-tag", ["DELETE"], r.delete_version_tag),
    ]
    out: list[BaseRoute] = []
    for path, methods, handler in table:
        out.extend(route(upstream, path, methods, handler))
    return out
