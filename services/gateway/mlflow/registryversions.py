"""MLflow's model-versions endpoints (but transition-stage, see registrystages).

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
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from eventlog.errors import InvalidArgument
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog_services.gateway.mlflow.common import Body, Call, key_values, refusal
from modelog_services.gateway.mlflow.registryjson import (
    RUN_LINK_TAG,
    refuse_reserved,
    version_json,
    version_source,
)
from modelog_services.gateway.mlflow.registryreads import PAGE, RegistryReads
from modelog_services.gateway.mlflow.search import client_filter
from modelog_services.query.filter import Comparison, Expr, Not, format_filter, parse_filter
from modelog_services.registry.search import VERSIONS
from modelog_services.registry.sources import MODEL_ID_TAG, SOURCE_TAG, source_problem

MAX_REPLAYS = 100
DEFAULT_VERSION_ORDER = ("last_updated_timestamp DESC", "name ASC", "version DESC")
"""MLflow's order of model versions when the caller gives none."""
MLFLOW_VERSIONS = replace(VERSIONS, attributes={**VERSIONS.attributes, "source_path": "string"})
"""The registry's version search as MLflow's client writes it: `source_path` besides the registry's
attributes, which is our `modelog.mlflow.source` tag (`mlflow_version_filter`)."""


def _sourced(expr: Expr) -> Expr:
    if isinstance(expr, Comparison):
        if (expr.entity, expr.key) == ("attribute", "source_path"):
            return replace(expr, entity="tag", key=SOURCE_TAG)
        return expr
    if isinstance(expr, Not):
        return Not(_sourced(expr.item))
    return type(expr)(tuple(_sourced(e) for e in expr.items))


def mlflow_version_filter(text: str) -> str:
    """MLflow's model-versions filter in the registry's terms: the same text but for source_path."""
    expr = parse_filter(text, MLFLOW_VERSIONS)
    if expr is None or "source_path" not in text:
        return text
    return format_filter(_sourced(expr))


class VersionHandlers(RegistryReads):
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
        refuse_reserved(tags, "tags")
        m = await self._model(call, name)
        run_id, model_id = await self._origin(call, source, call.text("run_id"), call.text("model_id"))
        # The registry refuses such a source too; asking first leaves no artifact reference behind.
        problem = source_problem(source, run_id, model_id)
        if problem:
            raise refusal("source", problem)
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
        size = call.max_results(10_000, 200_000)
        order = [str(o) for o in call.items("order_by")] or list(DEFAULT_VERSION_ORDER)
        request = pb.SearchModelVersionsRequest(
            filter=mlflow_version_filter(client_filter(call.text("filter"))),
            order_by=order,
            page_token=call.text("page_token"),
        )
        found: list[pb.ModelVersion] = []
        while True:  # MLflow's pages are larger than the registry's: the registry's pages, back to back
            request.page_size = min(PAGE, size - len(found))
            got = await call(self.stub.SearchModelVersions, request)
            found.extend(got.versions)
            if not got.next_page_token or len(found) >= size:
                break
            request.page_token = got.next_page_token
        out: Body = {"model_versions": [version_json(v) for v in found]} if found else {}
        if got.next_page_token:
            out["next_page_token"] = got.next_page_token
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
        refuse_reserved({key: ""}, "key")
        ref = pb.VersionRef(model=call.text("name", required=True), version=self._number(call))
        await call(
            self.stub.AnnotateVersion, pb.AnnotateVersionRequest(ref=ref, tags={key: call.text("value")})
        )
        return {}

    async def delete_version_tag(self, call: Call) -> Body:
        key = call.text("key", required=True)
        refuse_reserved({key: ""}, "key")
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
