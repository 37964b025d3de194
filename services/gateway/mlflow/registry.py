"""MLflow's model registry endpoints as calls to our Registry service (and Tracking/Artifacts reads).

Decisions, each a translation rather than a rule of our own:

- **Sources.** MLflow names a version's files by a URI (`runs:/<run>/model`, `models:/<model_id>`,
  `mlflow-artifacts:/...`); our versions are made from a tracking run and an artifact version. The run is
  `run_id`, else the run a `runs:/` or `mlflow-artifacts:/<exp>/<run>/...` source names, else the
  version a `models:/<name>/<n>` source names, else the source run of the logged model
  (`LoggedModelLookup`, when wired). The artifact version is a *reference* we commit: an artifact
  `mlflow-source-<hash>` of kind model, tagged with the source, holding no files (the files stay where
  MLflow put them; committing the same reference again adds nothing). The source, run_link and model_id
  are kept as version tags `modelog.mlflow.*`, hidden from MLflow's tags and refused as MLflow tag keys.
- **Retries.** The stock client retries POSTs without a key. model-versions/create sends CreateModelVersion
  with an idempotency key derived from the caller, the model id and the request body (`Call.key`), so a
  retry returns the version the first attempt made. The same request sent again on purpose also returns
  that version (MLflow would number a new one; change the description or a tag to register the same
  source again) -- unless that version was deleted since, then it is a new registration.
  registered-models/create has no key: a retry is RESOURCE_ALREADY_EXISTS, which the client tolerates
  (a key would make a re-created name replay the deleted model). transition-stage has no key either (a
  body-derived key would replay an old request when a version goes back to a stage): a retry finds the
  version already in the stage, or the request the first attempt opened, and answers as that attempt.
- **Stages.** transition-stage is RequestTransition: the model's policy (the registry's only copy of the
  rule) decides. When it moves the version at once, the moved version is the answer. When the policy
  needs approvals, the request stays open and the answer is INVALID_STATE (400) naming the request id and
  the `modelog models approve` command another person runs. Moving to a stage the version is in is a
  no-op, as in MLflow; moving back to None is refused by the registry (archive instead).
  `archive_existing_versions` asks the registry to archive the other versions in the
  target stage once the move is done (each archive decided by the policy too); for Production the
  policy's own limit (default one version) archives the previous one when the approval lands.
- **Deletes.** MLflow frees a model's name on delete; our registry keeps a deleted model's name. So
  registered-models/delete renames the model to `<name>.deleted-<model_id>` and then deletes it (two
  audited events; time travel finds the old name). Deleted models and versions are
  RESOURCE_DOES_NOT_EXIST here. Versions in Production or with an alias are not deleted (the registry's
  rule protects deployments): INVALID_STATE says what to do first. Deleting a missing tag or alias is a
  no-op, as in MLflow.
- **Search.** Filters are MLflow's registry grammar (comparisons joined by AND on name, tags, run_id,
  source_path, version_number and timestamps, with =, !=, LIKE, ILIKE, IN, NOT IN, <, >): exact names,
  runs and tag values narrow the registry query, the gateway checks the rest and sorts as MLflow does
  (models by name, versions by last update), paging by offset.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from starlette.routing import BaseRoute

from eventlog.errors import FailedPrecondition, InvalidArgument, NotFound
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog_services.gateway.mlflow.common import Body, Call, key_values, pairs, route
from modelog_services.gateway.mlflow.search import (
    Clause,
    equal,
    matches,
    page,
    parse_filter,
    parse_order,
    sort,
)
from modelog_services.gateway.mlflow.tracking import Experiments, run_info_json
from modelog_services.gateway.upstream import Upstream

SOURCE_TAG = "modelog.mlflow.source"
RUN_LINK_TAG = "modelog.mlflow.run_link"
MODEL_ID_TAG = "modelog.mlflow.model_id"
RESERVED_TAGS = (SOURCE_TAG, RUN_LINK_TAG, MODEL_ID_TAG)

STAGE_NAME = {
    pb.STAGE_NONE: "None",
    pb.STAGE_STAGING: "Staging",
    pb.STAGE_PRODUCTION: "Production",
    pb.STAGE_ARCHIVED: "Archived",
}
STAGE_ENUM = {name.lower(): value for value, name in STAGE_NAME.items()}
PAGE = 1000  # the registry's largest page
MAX_SCAN = 100_000
MAX_REPLAYS = 100

LoggedModelLookup = Callable[[Call, str], Awaitable[tuple[str, str]]]
"""A logged model's (experiment id as MLflow shows it, source run id), from the logged-models translator."""


def ms(ts: Timestamp) -> int:
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


# ---------------------------------------------------------------- JSON shapes


def version_source(v: pb.ModelVersion) -> str:
    """The source MLflow gave, or for a version registered outside MLflow its artifact version."""
    return v.tags.get(SOURCE_TAG) or f"modelog-artifact:{v.artifact_name}:v{v.artifact_version}"


def version_json(v: pb.ModelVersion) -> Body:
    tags = {k: val for k, val in v.tags.items() if k not in RESERVED_TAGS}
    out: Body = {
        "name": v.model,
        "version": str(v.version),
        "creation_timestamp": ms(v.created_at),
        "last_updated_timestamp": ms(v.updated_at),
        "user_id": v.created_by,
        "current_stage": STAGE_NAME.get(v.stage, "None"),
        "description": v.description,
        "source": version_source(v),
        "run_id": v.run_id,
        "status": "READY",
        "tags": pairs(tags),
        "run_link": v.tags.get(RUN_LINK_TAG, ""),
        "aliases": sorted(v.aliases),
    }
    if v.status == pb.VERSION_STATUS_DEPRECATED:
        out["status_message"] = "deprecated in Modelog: it can only be archived"
    if v.tags.get(MODEL_ID_TAG):
        out["model_id"] = v.tags[MODEL_ID_TAG]
    return out


def model_json(m: pb.Model, latest: Sequence[pb.ModelVersion] = ()) -> Body:
    return {
        "name": m.name,
        "creation_timestamp": ms(m.created_at),
        "last_updated_timestamp": ms(m.updated_at),
        "user_id": m.created_by,
        "description": m.description,
        "latest_versions": [version_json(v) for v in latest],
        "tags": pairs(m.tags),
        "aliases": [{"alias": a, "version": str(n)} for a, n in sorted(m.aliases.items())],
    }


def latest_per_stage(
    versions: Sequence[pb.ModelVersion], stages: Sequence[str] = ()
) -> list[pb.ModelVersion]:
    """MLflow's latest versions: the highest number in each stage (of `stages`, or of all)."""
    wanted = {canonical_stage(s) for s in stages} if stages else set(STAGE_NAME.values())
    best: dict[str, pb.ModelVersion] = {}
    for v in versions:
        stage = STAGE_NAME.get(v.stage, "None")
        if stage in wanted and (stage not in best or v.version > best[stage].version):
            best[stage] = v
    return sorted(best.values(), key=lambda v: v.version)


def canonical_stage(text: str) -> str:
    value = STAGE_ENUM.get(text.strip().lower())
    if value is None:
        raise InvalidArgument.field(
            "stage", f"invalid model version stage {text!r}; use None, Staging, Production or Archived"
        )
    return STAGE_NAME[value]


def _reserved(tags: Mapping[str, str], field: str) -> None:
    for key in tags:
        if key in RESERVED_TAGS:
            raise InvalidArgument.field(field, f"tag {key!r} is kept by Modelog for the MLflow source")


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# ---------------------------------------------------------------- search attributes

MODEL_ATTRIBUTES = {"name": "string", "creation_timestamp": "number", "last_updated_timestamp": "number"}
VERSION_ATTRIBUTES = {
    "name": "string",
    "run_id": "string",
    "source_path": "string",
    "version_number": "number",
    "creation_timestamp": "number",
    "last_updated_timestamp": "number",
}


def model_attributes(m: pb.Model) -> dict[str, Any]:
    return {
        "name": m.name,
        "creation_timestamp": ms(m.created_at),
        "last_updated_timestamp": ms(m.updated_at),
    }


def version_attributes(v: pb.ModelVersion) -> dict[str, Any]:
    return {
        "name": v.model,
        "run_id": v.run_id,
        "source_path": version_source(v),
        "version_number": v.version,
        "creation_timestamp": ms(v.created_at),
        "last_updated_timestamp": ms(v.updated_at),
    }


# ---------------------------------------------------------------- the translator


class Registry:
    def __init__(self, upstream: Upstream, logged_models: LoggedModelLookup | None = None) -> None:
        self.stub = upstream.stub(registry_pb2_grpc.RegistryStub)
        self.tracking = upstream.stub(tracking_pb2_grpc.TrackingStub)
        self.artifacts = upstream.stub(artifacts_pb2_grpc.ArtifactsStub)
        self.ids = Experiments()
        self.logged_models = logged_models

    # ------------------------------------------------------------ reads shared by handlers

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

    # ------------------------------------------------------------ registered models

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
        flt = call.text("filter")
        clauses = parse_filter(flt, MODEL_ATTRIBUTES)
        keys = {"name": "name", "timestamp": "creation_timestamp", "creation_timestamp": "creation_timestamp"}
        order = parse_order(
            call.items("order_by"), {**keys, "last_updated_timestamp": "last_updated_timestamp"}
        )
        size = call.integer("max_results", 100) or 100
        if size > 1000:
            raise InvalidArgument.field("max_results", f"at most 1000 registered models per page, got {size}")
        exact = equal(clauses, "attribute", "name")
        if exact is not None:
            try:
                found = [await self._model(call, exact)]
            except (NotFound, InvalidArgument):
                found = []
        else:
            request = pb.SearchModelsRequest(
                name_contains=_literal(clauses),
                tags={c.key: str(c.value) for c in clauses if c.entity == "tag" and c.op == "="},
            )
            found = await self._every(call, self.stub.SearchModels, request, "models")
        found = [m for m in found if not m.deleted and matches(clauses, model_attributes(m), m.tags)]
        sort(found, [*order, ("name", False)], model_attributes)
        shown, token = page(found, size, call.text("page_token"), ["models", flt, order])
        out: Body = {}
        if shown:
            out["registered_models"] = await _gather(self._with_latest(call, m) for m in shown)
        if token:
            out["next_page_token"] = token
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

    # ------------------------------------------------------------ model versions

    async def _origin(self, call: Call, source: str, run_id: str, model_id: str) -> tuple[str, str]:
        """The run (and logged model) a source comes from, checked against what the caller gave."""
        named_run = ""
        if source.startswith("runs:/"):
            named_run = source[len("runs:/") :].lstrip("/").split("/", 1)[0]
        elif source.startswith("mlflow-artifacts:/"):
            parts = source[len("mlflow-artifacts:/") :].strip("/").split("/")
            if len(parts) >= 3 and parts[1] == "models" and not model_id:
                model_id = parts[2]
            elif len(parts) >= 3 and parts[2] == "artifacts":
                named_run = parts[1]
        elif source.startswith("models:/"):
            rest = source[len("models:/") :]
            if "/" in rest or "@" in rest:
                origin = await self._by_models_uri(call, rest)
                named_run = origin.run_id
                model_id = model_id or origin.tags.get(MODEL_ID_TAG, "")
            elif model_id and model_id != rest:
                raise InvalidArgument.field(
                    "model_id", f"source {source!r} is logged model {rest!r}, not {model_id!r}"
                )
            else:
                model_id = rest
        if named_run and run_id and named_run != run_id:
            raise InvalidArgument.field(
                "run_id", f"source {source!r} belongs to run {named_run!r}, not {run_id!r}"
            )
        run_id = run_id or named_run
        if not run_id and model_id and self.logged_models is not None:
            run_id = (await self.logged_models(call, model_id))[1]
        if not run_id:
            raise InvalidArgument.field(
                "run_id",
                f"a model version here is made from a tracking run; give run_id (the run that produced "
                f"{source!r}) or a runs:/<run_id>/<path> source",
            )
        await call(self.tracking.GetRun, tpb.GetRunRequest(run_id=run_id))  # unknown run: nothing committed
        return run_id, model_id

    async def _reference(
        self, call: Call, project: str, run_id: str, source: str, model_id: str
    ) -> pb.ArtifactRef:
        """An artifact version standing for the files at `source` (see the module docstring)."""
        digest = hashlib.sha256(f"{project}\0{run_id}\0{source}".encode()).hexdigest()[:24]
        tags = {"mlflow.source": source, **({"mlflow.model_id": model_id} if model_id else {})}
        request = apb.CommitVersionRequest(
            name=f"mlflow-source-{digest}",
            kind="model",
            message=f"MLflow model source {source} (the files stay at the source)",
            run_id=run_id,
            tags=tags,
            project=project,
        )
        got = await call(self.artifacts.CommitVersion, request)
        return pb.ArtifactRef(name=got.version.name, version=got.version.version)

    async def create_version(self, call: Call) -> Body:
        name, source = call.text("name", required=True), call.text("source", required=True)
        tags = key_values(call.fields.get("tags"), "tags")
        _reserved(tags, "tags")
        m = await self._model(call, name)
        run_id, model_id = await self._origin(call, source, call.text("run_id"), call.text("model_id"))
        tags[SOURCE_TAG] = source
        if call.text("run_link"):
            tags[RUN_LINK_TAG] = call.text("run_link")
        if model_id:
            tags[MODEL_ID_TAG] = model_id
        request = pb.CreateModelVersionRequest(
            model=name,
            run_id=run_id,
            artifact=await self._reference(call, m.project, run_id, source, model_id),
            description=call.text("description"),
            tags=tags,
        )
        # The client's retry of this POST is the same body from the same caller: the same version.
        key = call.key(m.model_id)
        got = await call(self.stub.CreateModelVersion, request, idempotency_key=key)
        for _ in range(MAX_REPLAYS):
            if got.version.status != pb.VERSION_STATUS_DELETED:
                break
            # The version this key made was deleted since: asking again is a new registration.
            key = call.key(m.model_id, f"after-deleted-{got.version.version}")
            got = await call(self.stub.CreateModelVersion, request, idempotency_key=key)
        return {"model_version": version_json(got.version)}

    async def get_version(self, call: Call) -> Body:
        v = await self._version(call, call.text("name", required=True), self._number(call))
        return {"model_version": version_json(v)}

    async def search_versions(self, call: Call) -> Body:
        flt = call.text("filter")
        clauses = parse_filter(flt, VERSION_ATTRIBUTES)
        keys = {k: k for k in ("name", "version_number", "creation_timestamp", "last_updated_timestamp")}
        order = parse_order(call.items("order_by"), {**keys, "timestamp": "creation_timestamp"})
        size = call.integer("max_results", 10_000) or 10_000
        if size > 200_000:
            raise InvalidArgument.field("max_results", f"at most 200000 model versions per page, got {size}")
        request = pb.SearchModelVersionsRequest(
            model=equal(clauses, "attribute", "name") or "",
            run_id=equal(clauses, "attribute", "run_id") or "",
            tags={c.key: str(c.value) for c in clauses if c.entity == "tag" and c.op == "="},
        )
        try:
            found = await self._every(call, self.stub.SearchModelVersions, request, "versions")
        except InvalidArgument:
            if not request.model:
                raise
            found = []  # a name no model can have matches nothing, as in MLflow
        found = [v for v in found if matches(clauses, version_attributes(v), v.tags)]
        default = [("last_updated_timestamp", True), ("name", False), ("version_number", True)]
        sort(found, order or default, version_attributes)
        shown, token = page(found, size, call.text("page_token"), ["versions", flt, order])
        out: Body = {"model_versions": [version_json(v) for v in shown]} if shown else {}
        if token:
            out["next_page_token"] = token
        return out

    async def update_version(self, call: Call) -> Body:
        ref = pb.VersionRef(model=call.text("name", required=True), version=self._number(call))
        request = pb.AnnotateVersionRequest(ref=ref)
        if "description" in call.fields:
            request.description = call.text("description")
        got = await call(self.stub.AnnotateVersion, request)
        return {"model_version": version_json(got.version)}

    async def delete_version(self, call: Call) -> Body:
        v = await self._version(call, call.text("name", required=True), self._number(call))
        ref = pb.VersionRef(model=v.model, version=v.version)
        await call(self.stub.DeleteModelVersion, pb.DeleteModelVersionRequest(ref=ref))
        return {}

    async def set_version_tag(self, call: Call) -> Body:
        key = call.text("key", required=True)
        _reserved({key: ""}, "key")
        ref = pb.VersionRef(model=call.text("name", required=True), version=self._number(call))
        await call(
            self.stub.AnnotateVersion, pb.AnnotateVersionRequest(ref=ref, tags={key: call.text("value")})
        )
        return {}

    async def delete_version_tag(self, call: Call) -> Body:
        key = call.text("key", required=True)
        _reserved({key: ""}, "key")
        v = await self._version(call, call.text("name", required=True), self._number(call))
        if key in v.tags:
            ref = pb.VersionRef(model=v.model, version=v.version)
            await call(self.stub.AnnotateVersion, pb.AnnotateVersionRequest(ref=ref, delete_tag_keys=[key]))
        return {}

    async def download_uri(self, call: Call) -> Body:
        v = await self._version(call, call.text("name", required=True), self._number(call))
        return {"artifact_uri": await self._location(call, v)}

    async def _location(self, call: Call, v: pb.ModelVersion, depth: int = 0) -> str:
        """Where MLflow finds the version's files: its source, resolved as MLflow's store does."""
        source = version_source(v)
        if source.startswith("runs:/"):
            run_id, _, path = source[len("runs:/") :].lstrip("/").partition("/")
            root = await self._run_root(call, run_id)
            return f"{root}/{path.strip('/')}" if path.strip("/") else root
        if source.startswith("models:/"):
            rest = source[len("models:/") :]
            if "/" not in rest and "@" not in rest:
                if self.logged_models is not None:
                    experiment_id = (await self.logged_models(call, rest))[0]
                else:  # a logged model lives in the experiment of the run that logged it
                    experiment_id = (await self._run_root(call, v.run_id)).split("/")[1]
                return f"mlflow-artifacts:/{experiment_id}/models/{rest}/artifacts"
            if depth < 10:
                return await self._location(call, await self._by_models_uri(call, rest), depth + 1)
        return source

    # ------------------------------------------------------------ stages

    async def transition_stage(self, call: Call) -> Body:
        name, number = call.text("name", required=True), self._number(call)
        stage = canonical_stage(call.text("stage", required=True))
        archive = _flag(call.fields.get("archive_existing_versions"))
        if archive and stage not in ("Staging", "Production"):
            raise InvalidArgument.field(
                "archive_existing_versions",
                f"only a move to Staging or Production archives others, not {stage}",
            )
        target = STAGE_ENUM[stage.lower()]
        ref = pb.VersionRef(model=name, version=number)
        request: pb.TransitionRequest | None = None
        version = await self._version(call, name, number)
        if version.stage != target:
            try:
                got = await call(
                    self.stub.RequestTransition,
                    pb.RequestTransitionRequest(
                        ref=ref, stage=target, comment="transition-stage (MLflow API)"
                    ),
                )
                request, version = got.request, got.version
            except InvalidArgument as err:
                if target != pb.STAGE_NONE:
                    raise
                raise InvalidArgument(
                    f"{err.message} (MLflow's None: in Modelog a version in {STAGE_NAME[version.stage]} "
                    "never moves back to no stage; move it to Archived instead)",
                    violations=err.violations,
                ) from None
            except FailedPrecondition:
                # A retry of a call whose answer was lost finds its own outcome: answer as it would have.
                version = await self._version(call, name, number)
                if version.HasField("open_request") and version.open_request.to_stage == target:
                    request = version.open_request
                elif version.stage != target:
                    raise
        if request is not None and request.status == pb.REQUEST_STATUS_OPEN:
            raise await self._awaiting(call, request)
        if archive:
            await self._archive_others(call, name, number, target)
        return {"model_version": version_json(version)}

    async def _archive_others(self, call: Call, name: str, number: int, stage: pb.Stage.ValueType) -> None:
        req = pb.SearchModelVersionsRequest(model=name, stage=stage)
        for other in await self._every(call, self.stub.SearchModelVersions, req, "versions"):
            if other.version != number:
                ref = pb.VersionRef(model=name, version=other.version)
                comment = f"archive_existing_versions: version {number} entered {STAGE_NAME[stage]}"
                await call(
                    self.stub.RequestTransition,
                    pb.RequestTransitionRequest(ref=ref, stage=pb.STAGE_ARCHIVED, comment=comment),
                )

    async def _awaiting(self, call: Call, r: pb.TransitionRequest) -> FailedPrecondition:
        m = await self._model(call, r.model)
        to = STAGE_NAME.get(r.to_stage, "?")
        policy = {
            "Staging": m.policy.staging,
            "Production": m.policy.production,
            "Archived": m.policy.archived,
        }[to]
        who = f"a {r.approver_role}" + (
            "" if policy.allow_self_approval else f" other than {r.requested_by!r}"
        )
        missing = r.approvals_required - len(r.approvals)
        approve = f"modelog models approve {shlex.quote(r.model)} {r.version} --request-id {r.request_id}"
        return FailedPrecondition(
            f"version {r.version} of model {r.model!r} stays in {STAGE_NAME.get(r.from_stage, '?')}: the "
            f"model's policy needs {r.approvals_required} approval(s) by {who} to enter {to}, so transition "
            f"request {r.request_id} was opened and waits for {missing} more. To approve it, run "
            f"`{approve}` with the approver's token (MODELOG_TOKEN); "
            f"`modelog models requests {shlex.quote(r.model)} --open` lists open requests, and "
            f"`modelog models cancel {shlex.quote(r.model)} {r.version}` withdraws this one.",
            metadata={"request_id": r.request_id, "model": r.model, "version": str(r.version)},
        )


def _literal(clauses: Sequence[Clause]) -> str:
    """The longest fixed text of a name pattern: the registry's case-insensitive contains-filter is a
    superset of the pattern's matches, which are then checked exactly."""
    best = ""
    for c in clauses:
        if (c.entity, c.key) == ("attribute", "name") and c.op in ("LIKE", "ILIKE"):
            for part in re.split(r"[%_]", str(c.value)):
                best = part if len(part) > len(best) else best
    return best


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
