"""MLflow 3's logged models as artifacts of our Artifacts service: no service or event type of their own.

A logged model `m-<hex>` is the artifact `model-m-<hex>` (kind model, in its experiment's project,
run_id = its source run). Its manifest holds its files under `artifacts/` (written through the
mlflow-artifacts paths, artifacts.py) and its metadata beside them in `logged-model.json`: name,
experiment, source run, status, params, tags, the runs it is an output of, and whether it was deleted.
Every change (created, finalized, tagged, deleted, a file added) is a new version through the same
read-modify-commit as a file (`Files.change`), so concurrent changes never lose one another, history
and time travel come for free, and no limit on tags applies beyond MLflow's own.

Model ids are random, not derived from the request: logging the same model twice in one run (a
checkpoint per epoch) makes two models, as in MLflow; a retried create whose reply was lost leaves
a PENDING model behind, as in MLflow. Deleting a model marks it deleted (MLflow's soft delete): it is
RESOURCE_DOES_NOT_EXIST unless asked for with allow_deleted, its files stay.

Metrics logged for a model (`log_metric(..., model_id=...)`, or in a run whose active model it is)
are tracking metric points like any other, written by the same LogMetricsBatch call as the run's own
copy: the run keeps them under a reserved key (`modelmetrics.model_key`: model, dataset reference,
key), and the model's metadata lists the runs that logged some (`metric_runs`) and the datasets the
references stand for (`metric_datasets`), changed only when a run or dataset is new to it. GET reads
the points back from those runs' histories.

Search reads the metadata of every logged model the caller may list (one GetVersion each, metadata
documents cached by digest), then filters them with the one search grammar (modelog_services.query:
the parser every search uses and its in-memory evaluator, as logged models have no table or service
of their own) on name, model_id, source_run_id, status, model_type, timestamps and tags.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from starlette.routing import BaseRoute

from eventlog.errors import InvalidArgument, ModelogError, NotFound
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog_services.gateway.mlflow.artifacts import MODEL_FILES, Entries, Files, Target, entry
from modelog_services.gateway.mlflow.common import Body, Call, json_number, key_values, pairs, route
from modelog_services.gateway.mlflow.modelmetrics import DatasetRefs, metric_prefix, parse_model_key
from modelog_services.gateway.mlflow.registry import LoggedModelLookup
from modelog_services.gateway.mlflow.search import page
from modelog_services.gateway.mlflow.tracking import OUTPUTS_TAG, Experiments, outputs_of
from modelog_services.gateway.upstream import Caller, Upstream
from modelog_services.query.evaluate import matches
from modelog_services.query.filter import Schema, parse_filter

META = "logged-model.json"
FORMAT = "modelog.mlflow.logged-model.v1"
PREFIX = "model-"
STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
_STATUS_NUMBERS = {str(i + 1): s for i, s in enumerate(STATUSES)}
LOGGED_MODELS = Schema(
    what="logged models",
    item="logged model",
    attributes={
        "name": "string",
        "model_id": "string",
        "source_run_id": "string",
        "status": "string",
        "model_type": "string",
        "creation_timestamp": "number",
        "last_updated_timestamp": "number",
    },
)
ORDER_KEYS = {"creation_timestamp", "last_updated_timestamp", "name", "model_id"}
PAGE = 100
MAX_PAGE = 1000
READS_AT_ONCE = 32
CACHED_DOCUMENTS = 4096

Meta = dict[str, Any]


def _ms(ts: Timestamp) -> int:
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


def _encode(meta: Meta) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()


class LoggedModels:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.files = Files(upstream)
        self.tracking = upstream.stub(tracking_pb2_grpc.TrackingStub)
        self.artifacts = upstream.stub(artifacts_pb2_grpc.ArtifactsStub)
        self.ids = Experiments()
        self.documents: dict[str, bytes] = {}
        """Metadata documents by digest: content-addressed, so never stale."""

    # ------------------------------------------------------------ reading

    async def _document(self, who: Caller, entries: Mapping[str, apb.ManifestEntry]) -> Meta:
        found = entries.get(META)
        if found is None:
            raise NotFound("this artifact is not an MLflow logged model (it has no logged-model.json)")
        data = self.documents.get(found.digest)
        if data is None:
            data = await self.files.read_all(who, found.digest)
            if len(self.documents) >= CACHED_DOCUMENTS:
                self.documents.pop(next(iter(self.documents)))
            self.documents[found.digest] = data
        meta: Meta = json.loads(data)
        return meta

    async def _read(self, who: Caller, model_id: str, *, deleted: bool = False) -> tuple[Meta, Any]:
        snapshot = await self.files.version(who, PREFIX + model_id) if model_id.startswith("m-") else None
        if snapshot is None:
            raise NotFound(f"Logged model with ID '{model_id}' not found")
        meta = await self._document(who, snapshot.entries)
        if meta.get("deleted") and not deleted:
            raise NotFound(f"Logged model with ID '{model_id}' was deleted")
        return meta, snapshot.version

    def _json(self, meta: Meta, version: Any, metrics: list[Body] | None = None) -> Body:
        eid = self.ids.theirs(meta["experiment_id"])
        info: Body = {
            "model_id": meta["model_id"],
            "experiment_id": eid,
            "name": meta["name"],
            "creation_timestamp_ms": meta["created_ms"],
            "last_updated_timestamp_ms": _ms(version.created_at),
            "artifact_uri": f"mlflow-artifacts:/{eid}/models/{meta['model_id']}/{MODEL_FILES.rstrip('/')}",
            "status": meta["status"],
            "tags": pairs(meta["tags"]),
        }
        for key in ("model_type", "source_run_id", "status_message"):
            if meta.get(key):
                info[key] = meta[key]
        return {"info": info, "data": {"params": pairs(meta["params"]), "metrics": metrics or []}}

    async def _metrics(self, call: Call, meta: Meta) -> list[Body]:
        """Every point logged for the model, run by run, key by key, by step (as MLflow lists them)."""
        model_id = meta["model_id"]
        prefix = metric_prefix(model_id)
        datasets: dict[str, dict[str, str]] = meta.get("metric_datasets", {})
        out: list[Body] = []
        for run_id in meta.get("metric_runs", []):
            try:
                run = (await call(self.tracking.GetRun, tpb.GetRunRequest(run_id=run_id))).run
            except NotFound:
                continue
            for summary in run.metrics:
                parsed = parse_model_key(summary.key) if summary.key.startswith(prefix) else None
                if parsed is None:
                    continue
                _, ref, key = parsed
                history = await call(
                    self.tracking.GetMetricHistory,
                    tpb.GetMetricHistoryRequest(run_id=run_id, key=summary.key),
                )
                extra: Body = {"model_id": model_id, "run_id": run_id}
                if ref in datasets:
                    extra["dataset_name"] = datasets[ref]["name"]
                    extra["dataset_digest"] = datasets[ref]["digest"]
                out.extend(
                    {"key": key, "value": json_number(v), "timestamp": ts, "step": step, **extra}
                    for step, v, ts in zip(history.steps, history.values, history.timestamps_ms, strict=True)
                )
        return out

    async def check_model(self, call: Call, model_id: str) -> None:
        """Before metrics are logged for a model: it exists and is not deleted (else nothing is written)."""
        await self.ids.default(call)
        await self._read(call.caller, model_id)

    async def note_metrics(self, call: Call, model_id: str, run_id: str, datasets: DatasetRefs) -> None:
        """After they are logged: the model knows the run and the datasets (a new version only when
        one is new to it, so a training loop logging per step changes the model once)."""
        meta, _ = await self._read(call.caller, model_id)
        known = meta.get("metric_datasets", {})
        if run_id in meta.get("metric_runs", []) and all(ref in known for ref in datasets):
            return

        def change(meta: Meta) -> None:
            runs = meta.setdefault("metric_runs", [])
            if run_id not in runs:
                runs.append(run_id)
            refs = meta.setdefault("metric_datasets", {})
            for ref, (name, digest) in datasets.items():
                refs[ref] = {"name": name, "digest": digest}

        await self._update(call, model_id, change, f"metrics from run {run_id}")

    async def lookup(self, call: Call, model_id: str) -> tuple[str, str]:
        """(experiment id as MLflow shows it, source run id): registry.LoggedModelLookup."""
        await self.ids.default(call)
        meta, _ = await self._read(call.caller, model_id, deleted=True)
        return self.ids.theirs(meta["experiment_id"]), str(meta.get("source_run_id") or "")

    # ------------------------------------------------------------ changing

    async def _update(self, call: Call, model_id: str, change: Callable[[Meta], None], message: str) -> Body:
        await self.ids.default(call)
        await self._read(call.caller, model_id)  # a missing or deleted model: nothing is written
        changed: Meta = {}

        async def edit(entries: Entries) -> Entries:
            meta = await self._document(call.caller, entries)
            change(meta)
            data = _encode(meta)
            entries[META] = entry(META, await self.files.put(call.caller, data), len(data))
            changed.clear()
            changed.update(meta)
            return entries

        version = await self.files.change(
            call.caller, Target(PREFIX + model_id, "model", create=False), edit, f"MLflow: {message}"
        )
        return {"model": self._json(changed, version)}

    async def create(self, call: Call) -> Body:
        await self.ids.default(call)
        eid = await self.ids.ours(call, call.text("experiment_id", required=True))
        exp = await call(self.tracking.GetExperiment, tpb.GetExperimentRequest(experiment_id=eid))
        run_id = call.text("source_run_id")
        if run_id:
            await call(self.tracking.GetRun, tpb.GetRunRequest(run_id=run_id))
        model_id = "m-" + uuid.uuid4().hex
        meta: Meta = {
            "format": FORMAT,
            "model_id": model_id,
            "experiment_id": eid,
            "name": call.text("name") or f"model-{model_id[2:10]}",
            "model_type": call.text("model_type"),
            "source_run_id": run_id,
            "status": "LOGGED_MODEL_PENDING",
            "status_message": "",
            "params": key_values(call.fields.get("params"), "params"),
            "tags": key_values(call.fields.get("tags"), "tags"),
            "created_ms": time.time_ns() // 1_000_000,
            "deleted": False,
            "outputs": [],
        }
        data = _encode(meta)
        digest = await self.files.put(call.caller, data)

        async def first(entries: Entries) -> Entries:
            return {**entries, META: entry(META, digest, len(data))}

        target = Target(PREFIX + model_id, "model", run_id=run_id, project=exp.experiment.project)
        version = await self.files.change(
            call.caller, target, first, f"MLflow: logged model {meta['name']!r}"
        )
        return {"model": self._json(meta, version)}

    async def get(self, call: Call) -> Body:
        await self.ids.default(call)
        deleted = call.text("allow_deleted").lower() == "true"
        meta, version = await self._read(call.caller, self._id(call), deleted=deleted)
        return {"model": self._json(meta, version, await self._metrics(call, meta))}

    async def finalize(self, call: Call) -> Body:
        status = call.text("status", required=True)
        status = _STATUS_NUMBERS.get(status, status)
        if status not in STATUSES:
            raise InvalidArgument.field("status", f"{status!r} is not one of {', '.join(STATUSES)}")

        def change(meta: Meta) -> None:
            meta["status"] = status

        return await self._update(call, self._id(call), change, f"logged model {status}")

    async def set_tags(self, call: Call) -> Body:
        tags = key_values(call.fields.get("tags"), "tags")

        def change(meta: Meta) -> None:
            meta["tags"].update(tags)

        await self._update(call, self._id(call), change, f"tagged {', '.join(sorted(tags))}")
        return {}

    async def delete_tag(self, call: Call) -> Body:
        model_id = self._id(call)
        key = str(call.request.path_params.get("tag_key") or call.text("key", required=True))
        meta, _ = await self._read(call.caller, model_id)
        if key not in meta["tags"]:
            raise NotFound(f"No tag with key {key!r} found for logged model {model_id}")

        def change(meta: Meta) -> None:
            meta["tags"].pop(key, None)

        await self._update(call, model_id, change, f"tag {key} deleted")
        return {}

    async def log_params(self, call: Call) -> Body:
        params = key_values(call.fields.get("params"), "params")

        def change(meta: Meta) -> None:
            meta["params"].update(params)

        await self._update(call, self._id(call), change, f"params {', '.join(sorted(params))}")
        return {}

    async def delete(self, call: Call) -> Body:
        def change(meta: Meta) -> None:
            meta["deleted"] = True

        await self._update(call, self._id(call), change, "logged model deleted")
        return {}

    async def log_outputs(self, call: Call) -> Body:
        """Both sides keep the link: the logged model lists the run, the run (a reserved tag, shown
        by runs/get as `outputs`) lists the model."""
        run_id = call.text("run_id", required=True)
        run = (await call(self.tracking.GetRun, tpb.GetRunRequest(run_id=run_id))).run
        outputs = outputs_of(run.tags)
        for i, item in enumerate(call.items("models")):
            if not isinstance(item, dict) or not isinstance(item.get("model_id"), str):
                raise InvalidArgument.field(f"models[{i}].model_id", "missing value for required parameter")
            step = int(item.get("step") or 0)
            output = {"run_id": run_id, "step": step}

            def change(meta: Meta, output: dict[str, Any] = output) -> None:
                if output not in meta["outputs"]:
                    meta["outputs"].append(output)

            await self._update(call, item["model_id"], change, f"output of run {run_id}")
            mine = {"model_id": item["model_id"], "step": step}
            if mine not in outputs:
                outputs.append(mine)
        if outputs != outputs_of(run.tags):
            tags = {OUTPUTS_TAG: json.dumps(outputs, separators=(",", ":"))}
            await call(self.tracking.SetTags, tpb.SetTagsRequest(run_id=run_id, tags=tags))
        return {}

    # ------------------------------------------------------------ search

    async def search(self, call: Call) -> Body:
        await self.ids.default(call)
        experiments = {await self.ids.ours(call, str(e)) for e in call.items("experiment_ids")}
        flt = call.text("filter")
        expr = parse_filter(flt, LOGGED_MODELS)
        order = _order(call.items("order_by"))
        size = call.max_results(PAGE, MAX_PAGE)  # MLflow has none; we read each model's metadata
        listed = await call(self.artifacts.ListArtifacts, apb.ListArtifactsRequest(kind="model"))
        names = [a.name[len(PREFIX) :] for a in listed.artifacts if a.name.startswith(PREFIX + "m-")]
        gate = asyncio.Semaphore(READS_AT_ONCE)

        async def one(model_id: str) -> tuple[Meta, Any] | None:
            async with gate:
                try:
                    return await self._read(call.caller, model_id)
                except ModelogError:  # deleted, not a logged model, or not the caller's to read
                    return None

        found = [r for r in await asyncio.gather(*(one(n) for n in names)) if r is not None]
        rows = []
        for meta, version in found:
            if experiments and meta["experiment_id"] not in experiments:
                continue
            attributes = {
                "name": meta["name"],
                "model_id": meta["model_id"],
                "source_run_id": meta.get("source_run_id") or "",
                "status": meta["status"],
                "model_type": meta.get("model_type") or "",
                "creation_timestamp": float(meta["created_ms"]),
                "last_updated_timestamp": float(_ms(version.created_at)),
            }
            if matches(expr, attributes, meta["tags"]):
                rows.append((attributes, meta, version))
        for key, descending in reversed(order):
            rows.sort(key=lambda r: r[0][key], reverse=descending)
        shown, token = page(rows, size, call.text("page_token"), [sorted(experiments), flt, order])
        out: Body = {
            "models": [
                self._json(meta, version, await self._metrics(call, meta)) for _, meta, version in shown
            ]
        }
        if token:
            out["next_page_token"] = token
        return out

    @staticmethod
    def _id(call: Call) -> str:
        return str(call.request.path_params.get("model_id") or call.text("model_id", required=True))


def _order(items: list[Any]) -> list[tuple[str, bool]]:
    """MLflow's [{field_name, ascending}]; newest first when none is given (as MLflow's store does),
    model id last so pages are stable."""
    out: list[tuple[str, bool]] = []
    for i, item in enumerate(items):
        name = str(item.get("field_name", "")) if isinstance(item, dict) else ""
        name = name.removeprefix("attributes.").removeprefix("attribute.")
        if name not in ORDER_KEYS:
            raise InvalidArgument.field(
                f"order_by[{i}].field_name", f"{name!r} is not one of {', '.join(sorted(ORDER_KEYS))}"
            )
        out.append((name, not bool(item.get("ascending", True))))
    if not out:
        out.append(("creation_timestamp", True))
    out.append(("model_id", False))
    return out


def links(upstream: Upstream) -> LoggedModels:
    """What tracking.routes needs to log metrics for a logged model (ModelMetricLinks)."""
    return LoggedModels(upstream)


def lookup(upstream: Upstream) -> LoggedModelLookup:
    """What registry.routes needs to find a logged model's experiment and run."""
    return LoggedModels(upstream).lookup


def routes(upstream: Upstream) -> list[BaseRoute]:
    m = LoggedModels(upstream)
    table: list[tuple[str, list[str], Any]] = [
        ("/logged-models", ["POST"], m.create),
        ("/logged-models/search", ["POST"], m.search),
        ("/logged-models/{model_id}", ["GET"], m.get),
        ("/logged-models/{model_id}", ["PATCH"], m.finalize),
        ("/logged-models/{model_id}", ["DELETE"], m.delete),
        ("/logged-models/{model_id}/tags", ["PATCH"], m.set_tags),
        ("/logged-models/{model_id}/tags", ["DELETE"], m.delete_tag),
        ("/logged-models/{model_id}/tags/{tag_key:path}", ["DELETE"], m.delete_tag),
        ("/logged-models/{model_id}/params", ["POST"], m.log_params),
        ("/runs/outputs", ["POST"], m.log_outputs),
    ]
    out: list[BaseRoute] = []
    for path, methods, handler in table:
        out.extend(route(upstream, path, methods, handler))
    return out
