"""gRPC Tracking: requests become commands for the deciders in domain.py, replies come from the views.

No rule lives here. What this layer adds is what the rules cannot know: ids and server time, the
experiment-name claims around creates and renames, and the existence checks StartRun needs on other
streams (experiment, parent run).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import grpc

from eventlog import (
    AlreadyExists,
    EventStore,
    InvalidArgument,
    Metadata,
    ModelogError,
    NotFound,
    Unavailable,
)
from eventlog.commandpath import CommandPath, Executed, Route, command_map, derive_key, new_id
from eventlog.nameclaims import UniqueNames
from modelog._gen.tracking.v1 import tracking_pb2 as pb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog_platform import context
from modelog_platform.access import project_name
from modelog_platform.authz import DEFAULT_PROJECT

from . import domain as d
from . import reads
from .events import ExperimentRenamed, RunSource, registry
from .history import histories_reply, metric_history
from .names import run_name_for
from .projections import VIEWS
from .search import SearchRequest, search_runs

_KEY = re.compile(r"^[\x21-\x7e]{1,128}\Z")  # as the interceptor checks the `idempotency-key` header
_VIEWS = {pb.VIEW_TYPE_ACTIVE_ONLY: "active", pb.VIEW_TYPE_DELETED_ONLY: "deleted", pb.VIEW_TYPE_ALL: "all"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _id(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    return d.check_id(field, value)


def _view(value: int) -> str:
    try:
        return _VIEWS[value]  # type: ignore[index]
    except KeyError:
        raise InvalidArgument.field("view", f"{value} is not a ViewType") from None


def _metrics(run_id: str, batch: pb.MetricBatch) -> d.LogMetrics:
    n = len(batch.keys)
    return d.LogMetrics(
        run_id=run_id,
        keys=list(batch.keys),
        values=list(batch.values),
        steps=list(batch.steps) if batch.steps else [0] * n,
        timestamps_ms=list(batch.timestamps_ms) if batch.timestamps_ms else [now_ms()] * n,
    )


def _dataset_input(run_id: str, ds: pb.DatasetInput) -> d.LogDatasetInput:
    return d.LogDatasetInput(
        run_id=run_id,
        name=ds.name,
        digest=ds.digest,
        source_type=ds.source_type,
        source=ds.source,
        context=ds.context or None,
        dataset_schema=ds.dataset_schema or None,
        dataset_profile=ds.dataset_profile or None,
        tags=dict(ds.tags),
    )


def _metadata(scope: str) -> Metadata:
    """Event metadata of this request, its idempotency key scoped to one kind of append."""
    return _keyed(scope, context.current().idempotency_key)


def _keyed(scope: str, key: str | None) -> Metadata:
    if key is not None and not _KEY.match(key):
        raise InvalidArgument.field(
            "idempotency_key", "must be 1-128 printable ASCII characters without spaces"
        )
    return context.current().metadata().model_copy(update={"idempotency_key": derive_key(scope, key)})


class TrackingServicer(tracking_pb2_grpc.TrackingServicer):
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.pool = store.pool
        routes = command_map(
            (d.ExperimentCommand, Route(d.experiment_decider, d.experiment_stream_id)),
            (d.RunCommand, Route(d.run_decider, d.run_stream_id)),
        )
        self.commands = CommandPath(store, events=registry, routes=routes)
        self.names = UniqueNames(self.commands, d.name_claim_decider, d.experiment_name_stream_id)
        self.creating: dict[str, asyncio.Future[str]] = {}

    # ------------------------------------------------------------ experiments

    async def _experiment(self, experiment_id: str) -> pb.Experiment:
        async with self.pool.acquire() as conn:
            return await reads.get_experiment(conn, experiment_id=experiment_id)

    async def _change_experiment(self, scope: str, cmd: d.ExperimentCommand) -> pb.Experiment:
        await self.commands.send(cmd.experiment_id, cmd, _metadata(scope))
        return await self._experiment(cmd.experiment_id)

    async def _create_experiment(
        self,
        scope: str,
        name: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        project: str = "",
    ) -> pb.Experiment:
        experiment_id = new_id(scope, context.current().idempotency_key)
        project = project_name(project or DEFAULT_PROJECT)
        cmd = d.CreateExperiment(experiment_id, name, now_ms(), description, tags or {}, project)
        d.experiment_decider.decide(cmd, d.ExperimentState())  # bad input fails before the name is claimed
        metadata = _metadata(scope)
        await self.names.create(
            name, experiment_id, lambda: self.commands.send(experiment_id, cmd, metadata), metadata
        )
        return await self._experiment(experiment_id)

    async def CreateExperiment(
        self, request: pb.CreateExperimentRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.CreateExperimentResponse:
        experiment = await self._create_experiment(
            "CreateExperiment", request.name, request.description, dict(request.tags), request.project
        )
        return pb.CreateExperimentResponse(experiment=experiment)

    async def GetExperiment(
        self, request: pb.GetExperimentRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetExperimentResponse:
        which = request.WhichOneof("ref")
        if which is None or not getattr(request, which):
            raise InvalidArgument.field("experiment_id", "give experiment_id or name")
        async with self.pool.acquire() as conn:
            if which == "experiment_id":
                found = await reads.get_experiment(conn, experiment_id=request.experiment_id)
            else:
                found = await reads.get_experiment(conn, name=request.name)
        return pb.GetExperimentResponse(experiment=found)

    async def ListExperiments(
        self, request: pb.ListExperimentsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ListExperimentsResponse:
        async with self.pool.acquire() as conn:
            found, token = await reads.list_experiments(
                conn,
                _view(request.view),
                request.page_size,
                request.page_token,
                context.visible("experiment"),
                request.filter,
                tuple(request.order_by),
            )
        return pb.ListExperimentsResponse(experiments=found, next_page_token=token)

    async def RenameExperiment(
        self, request: pb.RenameExperimentRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RenameExperimentResponse:
        experiment_id = _id("experiment_id", request.experiment_id)
        cmd = d.RenameExperiment(experiment_id, request.name)
        state, _ = await self.commands.state(d.RenameExperiment, experiment_id)
        if not d.experiment_decider.decide(cmd, state):  # bad input or an unchanged name: nothing to claim
            return pb.RenameExperimentResponse(experiment=await self._experiment(experiment_id))
        metadata = _metadata("RenameExperiment")
        await self.names.rename(
            cmd.name,
            experiment_id,
            lambda: self.commands.send(experiment_id, cmd, metadata),
            lambda done: [e.previous_name for e in done.events if isinstance(e, ExperimentRenamed)],
            metadata,
        )
        return pb.RenameExperimentResponse(experiment=await self._experiment(experiment_id))

    async def SetExperimentDescription(
        self, request: pb.SetExperimentDescriptionRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SetExperimentDescriptionResponse:
        cmd = d.DescribeExperiment(_id("experiment_id", request.experiment_id), request.description)
        return pb.SetExperimentDescriptionResponse(
            experiment=await self._change_experiment("SetExperimentDescription", cmd)
        )

    async def SetExperimentTags(
        self, request: pb.SetExperimentTagsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SetExperimentTagsResponse:
        cmd = d.SetExperimentTags(_id("experiment_id", request.experiment_id), dict(request.tags))
        return pb.SetExperimentTagsResponse(
            experiment=await self._change_experiment("SetExperimentTags", cmd)
        )

    async def DeleteExperimentTag(
        self, request: pb.DeleteExperimentTagRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.DeleteExperimentTagResponse:
        cmd = d.DeleteExperimentTag(_id("experiment_id", request.experiment_id), request.key)
        return pb.DeleteExperimentTagResponse(
            experiment=await self._change_experiment("DeleteExperimentTag", cmd)
        )

    async def DeleteExperiment(
        self, request: pb.DeleteExperimentRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.DeleteExperimentResponse:
        cmd = d.DeleteExperiment(_id("experiment_id", request.experiment_id))
        return pb.DeleteExperimentResponse(experiment=await self._change_experiment("DeleteExperiment", cmd))

    async def RestoreExperiment(
        self, request: pb.RestoreExperimentRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RestoreExperimentResponse:
        cmd = d.RestoreExperiment(_id("experiment_id", request.experiment_id))
        return pb.RestoreExperimentResponse(
            experiment=await self._change_experiment("RestoreExperiment", cmd)
        )

    # ------------------------------------------------------------ runs: writes

    async def _experiment_for_run(self, request: pb.StartRunRequest) -> str:
        which = request.WhichOneof("experiment")
        if which == "experiment_id" and request.experiment_id:
            return _id("experiment_id", request.experiment_id)
        if which != "experiment_name" or not request.experiment_name:
            raise InvalidArgument.field("experiment_id", "give experiment_id or experiment_name")
        name = request.experiment_name
        found = await self._experiment_named(name)
        if found is not None:
            return found
        if not request.create_experiment:
            raise NotFound(f"no experiment named {name!r} (set create_experiment to create it)")
        try:
            return await self._create_once(name, request.project)
        except AlreadyExists:  # another process claimed the name first: use its experiment
            found = await self._experiment_named(name)
            if found is not None:
                return found
            raise Unavailable(
                f"experiment {name!r} is being created by a concurrent call; retry in a moment"
            ) from None

    async def _create_once(self, name: str, project: str) -> str:
        """Create an experiment for StartRun; concurrent StartRuns of this process wait for that one
        (a sweep starting eight runs in a new experiment makes one experiment, not seven errors)."""
        pending = self.creating.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.creating[name] = future
        try:
            made = await self._create_experiment("StartRun.experiment", name, project=project)
            experiment_id = made.experiment_id
            future.set_result(experiment_id)
            return experiment_id
        except BaseException as exc:
            # Waiters see the creator's error; a creator cancelled by its own caller is not theirs.
            interrupted = Unavailable(f"creating experiment {name!r} was interrupted; retry")
            future.set_exception(exc if isinstance(exc, Exception) else interrupted)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            del self.creating[name]

    async def _experiment_named(self, name: str) -> str | None:
        async with self.pool.acquire() as conn:
            found = await conn.fetchval(
                f"SELECT experiment_id FROM {VIEWS.experiments} WHERE name = $1", name
            )
        return None if found is None else str(found)

    async def StartRun(
        self, request: pb.StartRunRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.StartRunResponse:
        experiment_id = await self._experiment_for_run(request)
        experiment, _ = await self.commands.state(d.CreateExperiment, experiment_id)
        d.ensure_experiment_accepts_runs(experiment, experiment_id)
        parent = request.parent_run_id or None
        if parent is not None:
            parent_state, _ = await self.commands.state(d.StartRun, _id("parent_run_id", parent))
            d.ensure_valid_parent(parent_state, parent, experiment_id)
        run_id = (
            _id("run_id", request.run_id)
            if request.run_id
            else new_id("StartRun", context.current().idempotency_key)
        )
        s = request.source
        start = d.StartRun(
            run_id=run_id,
            experiment_id=experiment_id,
            name=request.name or run_name_for(run_id),
            start_time_ms=request.start_time_ms if request.HasField("start_time_ms") else now_ms(),
            parent_run_id=parent,
            source=RunSource(
                git_commit=s.git_commit or None,
                entry_point=s.entry_point or None,
                host=s.host or None,
                user=s.user or None,
            ),
            tags=dict(request.tags),
        )
        commands: list[d.RunCommand] = [start]
        if request.params:
            commands.append(d.LogParams(run_id, dict(request.params)))
        done = await self.commands.execute(
            d.batch_decider, d.run_stream_id(run_id), commands, _metadata("StartRun")
        )
        return pb.StartRunResponse(run=reads.run_from_state(done.state))

    async def _run_command(self, scope: str, cmd: d.RunCommand) -> d.RunState:
        _id("run_id", cmd.run_id)
        done: Executed[d.RunState] = await self.commands.send(cmd.run_id, cmd, _metadata(scope))
        return done.state

    async def LogParams(
        self, request: pb.LogParamsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.LogParamsResponse:
        await self._run_command("LogParams", d.LogParams(request.run_id, dict(request.params)))
        return pb.LogParamsResponse()

    async def SetTags(self, request: pb.SetTagsRequest, ctx: grpc.aio.ServicerContext) -> pb.SetTagsResponse:
        await self._run_command("SetTags", d.SetTags(request.run_id, dict(request.tags)))
        return pb.SetTagsResponse()

    async def DeleteTag(
        self, request: pb.DeleteTagRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.DeleteTagResponse:
        await self._run_command("DeleteTag", d.DeleteTag(request.run_id, request.key))
        return pb.DeleteTagResponse()

    async def RenameRun(
        self, request: pb.RenameRunRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RenameRunResponse:
        await self._run_command("RenameRun", d.RenameRun(request.run_id, request.name))
        return pb.RenameRunResponse()

    async def LogDatasetInput(
        self, request: pb.LogDatasetInputRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.LogDatasetInputResponse:
        await self._run_command("LogDatasetInput", _dataset_input(request.run_id, request.dataset))
        return pb.LogDatasetInputResponse()

    async def LogRunBatch(
        self, request: pb.LogRunBatchRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.LogRunBatchResponse:
        run_id = _id("run_id", request.run_id)
        commands: list[d.RunCommand] = []
        if request.name:
            commands.append(d.RenameRun(run_id, request.name))
        if request.params:
            commands.append(d.LogParams(run_id, dict(request.params)))
        if request.tags:
            commands.append(d.SetTags(run_id, dict(request.tags)))
        if request.metrics.keys:
            commands.append(d.grouped_by_key(_metrics(run_id, request.metrics)))
        commands.extend(_dataset_input(run_id, ds) for ds in request.datasets)
        if not commands:
            commands.append(d.SetTags(run_id, {}))  # an empty batch still names a run that must exist
        key = request.idempotency_key or context.current().idempotency_key
        done = await self.commands.execute(
            d.batch_decider, d.run_stream_id(run_id), commands, _keyed("LogRunBatch", key)
        )
        return pb.LogRunBatchResponse(replayed=done.replayed)

    async def FinishRun(
        self, request: pb.FinishRunRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.FinishRunResponse:
        known = request.status in pb.RunStatus.values()
        status = (
            pb.RunStatus.Name(request.status).removeprefix("RUN_STATUS_") if known else str(request.status)
        )
        end = request.end_time_ms if request.HasField("end_time_ms") else now_ms()
        state = await self._run_command("FinishRun", d.FinishRun(request.run_id, status, end))
        return pb.FinishRunResponse(info=reads.run_from_state(state).info)

    async def DeleteRun(
        self, request: pb.DeleteRunRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.DeleteRunResponse:
        await self._run_command("DeleteRun", d.DeleteRun(request.run_id))
        return pb.DeleteRunResponse()

    async def RestoreRun(
        self, request: pb.RestoreRunRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RestoreRunResponse:
        await self._run_command("RestoreRun", d.RestoreRun(request.run_id))
        return pb.RestoreRunResponse()

    async def _log_batch(self, batch: pb.MetricBatch, key: str | None, reply: pb.LogMetricsResponse) -> None:
        run_id = _id("run_id", batch.run_id)
        cmd = d.grouped_by_key(_metrics(run_id, batch))
        done = await self.commands.send(run_id, cmd, _keyed("LogMetrics", key or None))
        reply.batches += 1
        reply.points += len(batch.keys)
        reply.replayed_batches += int(done.replayed)

    async def LogMetrics(
        self, request_iterator: AsyncIterator[pb.MetricBatch], ctx: grpc.aio.ServicerContext
    ) -> pb.LogMetricsResponse:
        reply = pb.LogMetricsResponse()
        async for batch in request_iterator:
            try:
                await self._log_batch(batch, batch.idempotency_key, reply)
            except ModelogError as exc:
                exc.message = f"batch {reply.batches} of the stream: {exc.message}"
                exc.args = (exc.message,)
                exc.metadata["batch"] = str(reply.batches)
                raise
        return reply

    async def LogMetricsBatch(
        self, request: pb.MetricBatch, ctx: grpc.aio.ServicerContext
    ) -> pb.LogMetricsResponse:
        reply = pb.LogMetricsResponse()
        await self._log_batch(request, request.idempotency_key or context.current().idempotency_key, reply)
        return reply

    # ------------------------------------------------------------ runs: reads

    async def GetRun(self, request: pb.GetRunRequest, ctx: grpc.aio.ServicerContext) -> pb.GetRunResponse:
        run_id = _id("run_id", request.run_id)
        async with self.pool.acquire() as conn:
            return pb.GetRunResponse(run=await reads.get_run(conn, run_id))

    async def SearchRuns(
        self, request: pb.SearchRunsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.SearchRunsResponse:
        search = SearchRequest(
            experiment_ids=tuple(request.experiment_ids),
            filter=request.filter,
            order_by=tuple(request.order_by),
            page_size=request.page_size,
            page_token=request.page_token,
            view=_view(request.view),
        )
        async with self.pool.acquire() as conn:
            rows, token = await search_runs(conn, search)
            runs = await reads.runs_with_details(conn, rows, dataset_documents=False)
        return pb.SearchRunsResponse(runs=runs, next_page_token=token)

    async def GetMetricHistory(
        self, request: pb.GetMetricHistoryRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetMetricHistoryResponse:
        run_id = _id("run_id", request.run_id)
        if not request.key:
            raise InvalidArgument.field("key", "is required")
        async with self.pool.acquire() as conn:
            h = await metric_history(conn, run_id, request.key, request.max_points)
        return pb.GetMetricHistoryResponse(
            key=request.key,
            steps=h.steps,
            values=h.values,
            timestamps_ms=h.timestamps_ms,
            total_points=h.total,
            downsampled=h.downsampled,
        )

    async def GetMetricHistories(
        self, request: pb.GetMetricHistoriesRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GetMetricHistoriesResponse:
        async with self.pool.acquire() as conn:
            return await histories_reply(conn, request)

    async def CompareRuns(
        self, request: pb.CompareRunsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.CompareRunsResponse:
        run_ids = [_id(f"run_ids[{i}]", r) for i, r in enumerate(request.run_ids)]
        async with self.pool.acquire() as conn:
            return await reads.compare_runs(conn, run_ids)
