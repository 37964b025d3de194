"""MLflow's tracking endpoints as calls to our Tracking service; the JSON shapes and the default
experiment's id are in `trackingjson`.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

from starlette.routing import BaseRoute

from eventlog.errors import InvalidArgument, ModelogError
from modelog._gen.tracking.v1 import tracking_pb2 as pb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog_services.gateway.mlflow.common import Body, Call, json_number, key_values, missing, number, route
from modelog_services.gateway.mlflow.experiments import VIEW, experiment_routes
from modelog_services.gateway.mlflow.metricbatch import metric_columns
from modelog_services.gateway.mlflow.modelmetrics import (
    NO_DATASET,
    DatasetRefs,
    ModelMetricLinks,
    dataset_ref,
    model_key,
)
from modelog_services.gateway.mlflow.trackingjson import (
    CONTEXT_TAG,
    INPUTS_TAG,
    OUTPUTS_TAG,
    RUN_NAME_TAG,
    USER_TAG,
    Experiments,
    check_reserved,
    model_inputs_of,
    outputs_of,
    run_info_json,
    run_json,
)
from modelog_services.gateway.upstream import Upstream

__all__ = ["OUTPUTS_TAG", "Experiments", "Tracking", "outputs_of", "routes"]

_FINAL = {"FINISHED": pb.RUN_STATUS_FINISHED, "FAILED": pb.RUN_STATUS_FAILED, "KILLED": pb.RUN_STATUS_KILLED}
HISTORY_PAGE = 25_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Tracking:
    def __init__(self, upstream: Upstream, links: ModelMetricLinks | None = None) -> None:
        self.stub = upstream.stub(tracking_pb2_grpc.TrackingStub)
        self.ids = Experiments()
        self.links = links
        self.creating: set[str] = set()
        """The keys of runs/create calls in flight (see create_run)."""

    # ------------------------------------------------------------ runs

    def _run_id(self, call: Call) -> str:
        """MLflow's run_id, or the run_uuid old clients send; a refusal names run_id, as MLflow's does."""
        run_id = call.text("run_id") or call.text("run_uuid")
        if not run_id:
            raise missing("run_id")
        return run_id

    async def create_run(self, call: Call) -> Body:
        eid = await self.ids.ours(call, call.text("experiment_id", default="0"))
        tags = key_values(call.fields.get("tags"), "tags")
        check_reserved(tags)
        name = call.text("run_name") or tags.get(RUN_NAME_TAG, "")
        tags.pop(RUN_NAME_TAG, None)
        user = call.text("user_id") or tags.get(USER_TAG, "")
        request = pb.StartRunRequest(
            experiment_id=eid,
            name=name,
            tags=tags,
            source=pb.RunSource(user=user, entry_point=tags.get("mlflow.source.name", "")),
            start_time_ms=call.integer("start_time") or now_ms(),
        )
        # The stock client retries a POST that failed: the same body (with its start_time) from the
        # same caller is the same run (StartRun derives the run id from the key), never a second
        # one. A retry follows its first attempt, so an identical body while one is still in flight
        # is another run (threads starting unnamed runs in one millisecond): it takes the next key.
        base = call.key(str(request.start_time_ms))  # a body without start_time: now is part of it
        key = next(
            k
            for k in (f"{base}-{n}" if n else base for n in range(len(self.creating) + 1))
            if k not in self.creating
        )
        self.creating.add(key)
        try:
            got = await call(self.stub.StartRun, request, idempotency_key=key)
        finally:
            self.creating.discard(key)
        return {"run": run_json(got.run, self.ids)}

    async def get_run(self, call: Call) -> Body:
        got = await call(self.stub.GetRun, pb.GetRunRequest(run_id=self._run_id(call)))
        return {"run": run_json(got.run, self.ids)}

    async def update_run(self, call: Call) -> Body:
        run_id = self._run_id(call)
        name = call.text("run_name")
        if name:
            await call(self.stub.RenameRun, pb.RenameRunRequest(run_id=run_id, name=name))
        status = call.text("status").upper()
        if status and status not in (*_FINAL, "RUNNING", "SCHEDULED"):
            raise InvalidArgument.field("status", f"unknown run status {status!r}")
        if status in _FINAL:
            request = pb.FinishRunRequest(run_id=run_id, status=_FINAL[status])
            end = call.integer("end_time")
            if end is not None:
                request.end_time_ms = end
            try:
                got = await call(self.stub.FinishRun, request, idempotency_key=call.key())
                return {"run_info": run_info_json(got.info, self.ids)}
            except ModelogError as err:
                # A retry of an update whose reply was lost finds the run already ended that way.
                current = await call(self.stub.GetRun, pb.GetRunRequest(run_id=run_id))
                if current.run.info.status != _FINAL[status]:
                    raise err from None
        got_run = await call(self.stub.GetRun, pb.GetRunRequest(run_id=run_id))
        return {"run_info": run_info_json(got_run.run.info, self.ids)}

    async def delete_run(self, call: Call) -> Body:
        await call(self.stub.DeleteRun, pb.DeleteRunRequest(run_id=self._run_id(call)))
        return {}

    async def restore_run(self, call: Call) -> Body:
        await call(self.stub.RestoreRun, pb.RestoreRunRequest(run_id=self._run_id(call)))
        return {}

    async def log_metric(self, call: Call) -> Body:
        run_id = self._run_id(call)
        batch = pb.MetricBatch(
            run_id=run_id,
            keys=[call.text("key", required=True)],
            values=[number(call.fields.get("value"), "value")],
            steps=[call.integer("step", 0) or 0],
            timestamps_ms=[call.integer("timestamp", now_ms()) or now_ms()],
            idempotency_key=call.key(),
        )
        model = (call.text("model_id"), call.text("dataset_name"), call.text("dataset_digest"))
        touched = await self._model_points(call, batch, [model], "key")
        await call(self.stub.LogMetricsBatch, batch)
        await self._noted(call, run_id, touched)
        return {}

    async def _model_points(
        self, call: Call, batch: pb.MetricBatch, models: list[tuple[str, str, str]], field: str
    ) -> dict[str, DatasetRefs]:
        """For the points logged for a model (model_id, dataset name and digest per point), the model's
        copy under its reserved key, added to the same batch (modelmetrics); checked before anything
        of the request is written."""
        check_reserved(dict.fromkeys(batch.keys, ""), field)
        touched: dict[str, DatasetRefs] = {}
        if not any(model_id for model_id, _, _ in models):
            return touched
        for i, (model_id, dataset_name, dataset_digest) in enumerate(models):
            if not model_id:
                continue
            if self.links is None:
                raise InvalidArgument.field(f"{field[:-3]}model_id", "logged models are not served here")
            if model_id not in touched:
                await self.links.check_model(call, model_id)
                touched[model_id] = {}
            ref = dataset_ref(dataset_name, dataset_digest)
            if ref != NO_DATASET:
                touched[model_id][ref] = (dataset_name, dataset_digest)
            name = field.replace("key", f"[{i}].key") if len(models) > 1 else field
            batch.keys.append(model_key(model_id, ref, batch.keys[i], name))
            batch.values.append(batch.values[i])
            batch.steps.append(batch.steps[i])
            batch.timestamps_ms.append(batch.timestamps_ms[i])
        return touched

    async def _noted(self, call: Call, run_id: str, touched: dict[str, DatasetRefs]) -> None:
        if self.links is not None:
            for model_id, refs in touched.items():
                await self.links.note_metrics(call, model_id, run_id, refs)

    async def log_param(self, call: Call) -> Body:
        key = call.text("key", required=True)
        value = call.fields.get("value")
        await call(
            self.stub.LogParams,
            pb.LogParamsRequest(run_id=self._run_id(call), params={key: "" if value is None else str(value)}),
        )
        return {}

    async def set_tag(self, call: Call) -> Body:
        run_id = self._run_id(call)
        key = call.text("key", required=True)
        value = call.text("value")
        await self._tags(call, run_id, {key: value})
        return {}

    async def _tags(self, call: Call, run_id: str, tags: dict[str, str]) -> None:
        name = _named(tags, "key" if len(tags) == 1 else "tags")
        if name:
            await call(self.stub.RenameRun, pb.RenameRunRequest(run_id=run_id, name=name))
        if tags:
            await call(self.stub.SetTags, pb.SetTagsRequest(run_id=run_id, tags=tags))

    async def delete_tag(self, call: Call) -> Body:
        key = call.text("key", required=True)
        check_reserved({key: ""}, "key")
        await call(self.stub.DeleteTag, pb.DeleteTagRequest(run_id=self._run_id(call), key=key))
        return {}

    async def log_batch(self, call: Call) -> Body:
        """One LogRunBatch: a refused param, tag or point writes nothing of the request (as MLflow's
        store does it in one transaction); a retried request is replayed by its derived key."""
        run_id = self._run_id(call)
        params = key_values(call.fields.get("params"), "params")
        tags = key_values(call.fields.get("tags"), "tags")
        name = _named(tags, "tags")
        metrics = call.items("metrics")
        batch = pb.MetricBatch(run_id=run_id)
        touched: dict[str, DatasetRefs] = {}
        if metrics:
            models = metric_columns(metrics, batch)
            touched = await self._model_points(call, batch, models, "metrics.key")
        request = pb.LogRunBatchRequest(
            run_id=run_id, name=name, params=params, tags=tags, metrics=batch, idempotency_key=call.key()
        )
        await call(self.stub.LogRunBatch, request)
        await self._noted(call, run_id, touched)
        return {}

    async def log_inputs(self, call: Call) -> Body:
        """Every dataset and model input of the request in one LogRunBatch: all or none."""
        run_id = self._run_id(call)
        datasets = []
        for i, item in enumerate(call.items("datasets")):
            if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
                raise InvalidArgument.field(f"datasets[{i}].dataset", "missing value for required parameter")
            d = item["dataset"]
            tags = key_values(item.get("tags"), f"datasets[{i}].tags")
            context = tags.pop(CONTEXT_TAG, "")
            datasets.append(
                pb.DatasetInput(
                    name=str(d.get("name", "")),
                    digest=str(d.get("digest", "")),
                    source_type=str(d.get("source_type", "")),
                    source=str(d.get("source", "")),
                    context=context,
                    dataset_schema=str(d.get("schema", "")),
                    dataset_profile=str(d.get("profile", "")),
                    tags=tags,
                )
            )
        request = pb.LogRunBatchRequest(
            run_id=run_id,
            tags=await self._model_inputs(call, run_id),
            datasets=datasets,
            idempotency_key=call.key(),
        )
        await call(self.stub.LogRunBatch, request)
        return {}

    async def _model_inputs(self, call: Call, run_id: str) -> dict[str, str]:
        """MLflow 3's `models` of log-inputs (the logged models a run read, e.g. the one it evaluates),
        kept like outputs: a reserved run tag, shown by runs/get as `inputs.model_inputs`."""
        wanted = []
        for i, item in enumerate(call.items("models")):
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("model_id"), str)
                or not item["model_id"]
            ):
                raise InvalidArgument.field(f"models[{i}].model_id", "missing value for required parameter")
            if self.links is None:
                raise InvalidArgument.field(f"models[{i}].model_id", "logged models are not served here")
            await self.links.check_model(call, item["model_id"])
            wanted.append(item["model_id"])
        if not wanted:
            return {}
        run = (await call(self.stub.GetRun, pb.GetRunRequest(run_id=run_id))).run
        inputs = model_inputs_of(run.tags)
        added = [{"model_id": m} for m in dict.fromkeys(wanted) if {"model_id": m} not in inputs]
        return {INPUTS_TAG: json.dumps(inputs + added, separators=(",", ":"))} if added else {}

    async def get_metric_history(self, call: Call) -> Body:
        run_id = self._run_id(call)
        key = call.text("metric_key", required=True)
        size = min(call.integer("max_results", HISTORY_PAGE) or HISTORY_PAGE, HISTORY_PAGE)
        offset = _offset(call.text("page_token"))
        got = await call(self.stub.GetMetricHistory, pb.GetMetricHistoryRequest(run_id=run_id, key=key))
        end = min(offset + size, len(got.values))
        points = [
            {
                "key": key,
                "value": json_number(got.values[i]),
                "timestamp": got.timestamps_ms[i],
                "step": got.steps[i],
            }
            for i in range(offset, end)
        ]
        out: Body = {"metrics": points}
        if end < len(got.values):
            out["next_page_token"] = base64.urlsafe_b64encode(str(end).encode()).decode()
        return out

    async def search_runs(self, call: Call) -> Body:
        ids = [await self.ids.ours(call, str(e)) for e in call.items("experiment_ids")]
        view = VIEW.get(call.text("run_view_type", default="ACTIVE_ONLY").upper(), pb.VIEW_TYPE_ACTIVE_ONLY)
        size = min(call.max_results(1000, 50_000), 1000)  # MLflow's cap; our pages hold 1000 runs
        got = await call(
            self.stub.SearchRuns,
            pb.SearchRunsRequest(
                experiment_ids=ids,
                filter=_run_name_tag(call.text("filter")),
                order_by=[_run_name_tag(str(o)) for o in call.items("order_by")],
                page_size=size,
                page_token=call.text("page_token"),
                view=view,
            ),
        )
        out: Body = {"runs": [run_json(r, self.ids) for r in got.runs]}
        if got.next_page_token:
            out["next_page_token"] = got.next_page_token
        return out if got.runs else ({"next_page_token": got.next_page_token} if got.next_page_token else {})


def _named(tags: dict[str, str], field: str) -> str:
    """MLflow names a run by its `mlflow.runName` tag; ours is an attribute: the tag is taken out of
    `tags` (after the reserved-key check) and returned."""
    check_reserved(tags, field)
    return tags.pop(RUN_NAME_TAG, None) or ""


def _offset(token: str) -> int:
    if not token:
        return 0
    try:
        value = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.field("page_token", "not a page token this server issued") from None
    if value < 0:
        raise InvalidArgument.field("page_token", "not a page token this server issued")
    return value


_RUN_NAME_TAG = re.compile(r"""\btags\.(?:`mlflow\.runName`|"mlflow\.runName"|mlflow\.runName)(?![\w.])""")


def _run_name_tag(text: str) -> str:
    """MLflow keeps a run's name in the tag mlflow.runName too, and clients filter and sort on it;
    here the name is the run's attribute (one value, never two that disagree)."""
    return _RUN_NAME_TAG.sub("attributes.run_name", text)


def routes(upstream: Upstream, links: ModelMetricLinks | None = None) -> list[BaseRoute]:
    t = Tracking(upstream, links)
    table: list[tuple[str, list[str], Any]] = [
        *experiment_routes(t.stub, t.ids),
        ("/runs/create", ["POST"], t.create_run),
        ("/runs/get", ["GET"], t.get_run),
        ("/runs/update", ["POST"], t.update_run),
        ("/runs/delete", ["POST"], t.delete_run),
        ("/runs/restore", ["POST"], t.restore_run),
        ("/runs/log-metric", ["POST"], t.log_metric),
        ("/runs/log-parameter", ["POST"], t.log_param),
        ("/runs/set-tag", ["POST"], t.set_tag),
        ("/runs/delete-tag", ["POST"], t.delete_tag),
        ("/runs/log-batch", ["POST"], t.log_batch),
        ("/runs/log-inputs", ["POST"], t.log_inputs),
        ("/runs/search", ["POST"], t.search_runs),
        ("/metrics/get-history", ["GET"], t.get_metric_history),
    ]
    out: list[BaseRoute] = []
    for path, methods, handler in table:
        out.extend(route(upstream, path, methods, handler))
    return out
