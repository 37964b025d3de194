"""MLflow's experiment endpoints as calls to our Tracking service, the default experiment ("0") made
on first use (`trackingjson.Experiments`)."""

from __future__ import annotations

import re
from typing import Any

from eventlog.errors import NotFound
from modelog._gen.tracking.v1 import tracking_pb2 as pb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog_services.gateway.mlflow.common import Body, Call, key_values
from modelog_services.gateway.mlflow.trackingjson import DEFAULT_NAME, Experiments, experiment_json

__all__ = ["VIEW", "ExperimentRoutes", "experiment_routes"]

VIEW = {
    "ACTIVE_ONLY": pb.VIEW_TYPE_ACTIVE_ONLY,
    "DELETED_ONLY": pb.VIEW_TYPE_DELETED_ONLY,
    "ALL": pb.VIEW_TYPE_ALL,
    "1": pb.VIEW_TYPE_ACTIVE_ONLY,
    "2": pb.VIEW_TYPE_DELETED_ONLY,
    "3": pb.VIEW_TYPE_ALL,
}


class ExperimentRoutes:
    def __init__(self, stub: tracking_pb2_grpc.TrackingStub, ids: Experiments) -> None:
        self.stub = stub
        self.ids = ids

    async def create_experiment(self, call: Call) -> Body:
        name = call.text("name", required=True)
        call.text("artifact_location")  # a string, as MLflow checks it; our files go to the artifacts service
        tags = key_values(call.fields.get("tags"), "tags")
        got = await call(self.stub.CreateExperiment, pb.CreateExperimentRequest(name=name, tags=tags))
        return {"experiment_id": self.ids.theirs(got.experiment.experiment_id)}

    async def get_experiment(self, call: Call) -> Body:
        eid = await self.ids.ours(call, call.text("experiment_id", required=True))
        got = await call(self.stub.GetExperiment, pb.GetExperimentRequest(experiment_id=eid))
        return {"experiment": experiment_json(got.experiment, self.ids)}

    async def get_experiment_by_name(self, call: Call) -> Body:
        name = call.text("experiment_name", required=True)
        if name == DEFAULT_NAME:
            await self.ids.default(call)
        got = await call(self.stub.GetExperiment, pb.GetExperimentRequest(name=name))
        return {"experiment": experiment_json(got.experiment, self.ids)}

    async def search_experiments(self, call: Call) -> Body:
        await self.ids.default(call)
        flt = call.text("filter").strip()
        view = VIEW.get(call.text("view_type", default="ACTIVE_ONLY").upper(), pb.VIEW_TYPE_ACTIVE_ONLY)
        size = min(call.max_results(1000, 50_000), 1000)  # MLflow's store cap; our pages hold 1000
        order_items = call.items("order_by")
        wanted = _name_filter(flt)
        if wanted is not None and not order_items:
            try:
                got = await call(self.stub.GetExperiment, pb.GetExperimentRequest(name=wanted))
            except NotFound:
                return {}
            exp = got.experiment
            shown = (view == pb.VIEW_TYPE_ALL) or ((view == pb.VIEW_TYPE_DELETED_ONLY) == exp.deleted)
            return {"experiments": [experiment_json(exp, self.ids)]} if shown else {}
        # Filter, order and paging are the tracking service's (ListExperiments, the shared grammar).
        request = pb.ListExperimentsRequest(
            view=view,
            page_size=size,
            page_token=call.text("page_token"),
            filter=flt,
            order_by=[str(o) for o in order_items],
        )
        listed = await call(self.stub.ListExperiments, request)
        out: Body = {"experiments": [experiment_json(e, self.ids) for e in listed.experiments]}
        if listed.next_page_token:
            out["next_page_token"] = listed.next_page_token
        return out

    async def update_experiment(self, call: Call) -> Body:
        eid = await self.ids.ours(call, call.text("experiment_id", required=True))
        new_name = call.text("new_name", required=True)
        await call(self.stub.RenameExperiment, pb.RenameExperimentRequest(experiment_id=eid, name=new_name))
        return {}

    async def delete_experiment(self, call: Call) -> Body:
        eid = await self.ids.ours(call, call.text("experiment_id", required=True))
        await call(self.stub.DeleteExperiment, pb.DeleteExperimentRequest(experiment_id=eid))
        return {}

    async def restore_experiment(self, call: Call) -> Body:
        eid = await self.ids.ours(call, call.text("experiment_id", required=True))
        await call(self.stub.RestoreExperiment, pb.RestoreExperimentRequest(experiment_id=eid))
        return {}

    async def set_experiment_tag(self, call: Call) -> Body:
        eid = await self.ids.ours(call, call.text("experiment_id", required=True))
        key = call.text("key", required=True)
        await call(
            self.stub.SetExperimentTags,
            pb.SetExperimentTagsRequest(experiment_id=eid, tags={key: call.text("value")}),
        )
        return {}

    async def delete_experiment_tag(self, call: Call) -> Body:
        eid = await self.ids.ours(call, call.text("experiment_id", required=True))
        key = call.text("key", required=True)
        await call(self.stub.DeleteExperimentTag, pb.DeleteExperimentTagRequest(experiment_id=eid, key=key))
        return {}


def _name_filter(flt: str) -> str | None:
    """The name of `name = 'x'` (what the stock client's helpers send), answered by one lookup."""
    m = re.fullmatch(r"""(?:attributes?\.)?name\s*=\s*'([^']*)'""", flt, re.S)
    return m.group(1) if m else None


def experiment_routes(
    stub: tracking_pb2_grpc.TrackingStub, ids: Experiments
) -> list[tuple[str, list[str], Any]]:
    e = ExperimentRoutes(stub, ids)
    return [
        ("/experiments/create", ["POST"], e.create_experiment),
        ("/experiments/get", ["GET"], e.get_experiment),
        ("/experiments/get-by-name", ["GET"], e.get_experiment_by_name),
        ("/experiments/search", ["POST", "GET"], e.search_experiments),
        ("/experiments/update", ["POST"], e.update_experiment),
        ("/experiments/delete", ["POST"], e.delete_experiment),
        ("/experiments/restore", ["POST"], e.restore_experiment),
        ("/experiments/set-experiment-tag", ["POST"], e.set_experiment_tag),
        ("/experiments/delete-experiment-tag", ["POST"], e.delete_experiment_tag),
    ]
