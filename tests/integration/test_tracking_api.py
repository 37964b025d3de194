"""The Tracking gRPC API in-process on a real PostgreSQL: every RPC, its refusals, and its views."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from modelog._gen.tracking.v1 import tracking_pb2 as pb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from modelog.shared.settings import Settings
from modelog_platform.app import Platform, Server, start_server
from modelog_platform.grpc_errors import status_details
from modelog_services.tracking.projections import ExperimentsView, RunsView
from tests.conftest import dsn_for_database
from tests.contracts import assert_rebuild_equals_live

pytestmark = pytest.mark.asyncio

FINISHED, FAILED, KILLED = pb.RUN_STATUS_FINISHED, pb.RUN_STATUS_FAILED, pb.RUN_STATUS_KILLED


class TrackingStack:
    """The platform with only the tracking service, its server, and a client stub."""

    def __init__(self, platform: Platform, server: Server, admin: str) -> None:
        self.platform, self.server, self.admin = platform, server, admin
        self.channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{server.port}", options=[("grpc.max_receive_message_length", 64 << 20)]
        )
        self.api = tracking_pb2_grpc.TrackingStub(self.channel)

    def md(self, key: str | None = None) -> list[tuple[str, str]]:
        md = [("authorization", f"Bearer {self.admin}")]
        return [*md, ("idempotency-key", key)] if key else md

    async def head(self) -> int:
        return (await self.platform.stores["tracking"].head())[0]

    async def experiment(self, name: str | None = None, **fields: Any) -> pb.Experiment:
        request = pb.CreateExperimentRequest(name=name or f"exp-{uuid.uuid4().hex[:8]}", **fields)
        return (await self.api.CreateExperiment(request, metadata=self.md())).experiment

    async def run(self, experiment_id: str, **fields: Any) -> pb.Run:
        request = pb.StartRunRequest(experiment_id=experiment_id, **fields)
        return (await self.api.StartRun(request, metadata=self.md())).run

    async def log(
        self, run_id: str, points: Iterable[tuple[str, float, int]], key: str = ""
    ) -> pb.LogMetricsResponse:
        keys, values, steps = zip(*points, strict=True)
        batch = pb.MetricBatch(run_id=run_id, keys=keys, values=values, steps=steps, idempotency_key=key)
        return await self.api.LogMetricsBatch(batch, metadata=self.md())


@contextlib.asynccontextmanager
async def open_stack(pg_dsn: str, home: Path) -> AsyncIterator[TrackingStack]:
    """A database of its own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    platform = await Platform.open(
        Settings(home=home, addr="127.0.0.1:0"), dsn_for_database(pg_dsn, name), services=("tracking",)
    )
    token = (await platform.ensure_admin_token()).read_text().strip()
    server = await start_server(platform, "127.0.0.1:0")
    stack = TrackingStack(platform, server, token)
    try:
        yield stack
    finally:
        await stack.channel.close()
        await server.stop(0)
        await platform.close()
        admin = await asyncpg.connect(pg_dsn)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture(scope="module")
async def tk(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TrackingStack]:
    async with open_stack(pg_dsn, tmp_path_factory.mktemp("home")) as stack:
        yield stack


async def refused(call: Any, code: grpc.StatusCode, *words: str) -> grpc.aio.AioRpcError:
    """Await a call that must fail with `code` and a message holding every one of `words`."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    for word in words:
        assert word in (info.value.details() or ""), info.value.details()
    return info.value


async def refused_unwritten(
    tk: TrackingStack, call: Callable[[], Awaitable[object]], code: grpc.StatusCode, *words: str
) -> None:
    """`refused`, and the log did not move: its head is read before the call is made (a grpc.aio
    call starts as soon as it exists)."""
    before = await tk.head()
    await refused(call(), code, *words)
    assert await tk.head() == before, "a refused call wrote to the log"


# ---------------------------------------------------------------- experiments


async def test_experiment_lifecycle(tk: TrackingStack) -> None:
    name = f"churn-{uuid.uuid4().hex[:6]}"
    exp = await tk.experiment(name, description="first", tags={"team": "nlp"})
    assert exp.name == name and exp.tags == {"team": "nlp"} and not exp.deleted
    by_name = await tk.api.GetExperiment(pb.GetExperimentRequest(name=name), metadata=tk.md())
    assert by_name.experiment == exp
    e = exp.experiment_id
    renamed = await tk.api.RenameExperiment(
        pb.RenameExperimentRequest(experiment_id=e, name=name + "-v2"), metadata=tk.md()
    )
    assert renamed.experiment.name == name + "-v2"
    # the old name is free again, the new one is taken
    await tk.experiment(name)
    await refused_unwritten(
        tk,
        lambda: tk.api.CreateExperiment(pb.CreateExperimentRequest(name=name + "-v2"), metadata=tk.md()),
        grpc.StatusCode.ALREADY_EXISTS,
        name + "-v2",
    )
    described = await tk.api.SetExperimentDescription(
        pb.SetExperimentDescriptionRequest(experiment_id=e, description="second"), metadata=tk.md()
    )
    assert described.experiment.description == "second"
    tagged = await tk.api.SetExperimentTags(
        pb.SetExperimentTagsRequest(experiment_id=e, tags={"owner": "ana"}), metadata=tk.md()
    )
    assert tagged.experiment.tags == {"team": "nlp", "owner": "ana"}
    untagged = await tk.api.DeleteExperimentTag(
        pb.DeleteExperimentTagRequest(experiment_id=e, key="team"), metadata=tk.md()
    )
    assert untagged.experiment.tags == {"owner": "ana"}
    deleted = await tk.api.DeleteExperiment(pb.DeleteExperimentRequest(experiment_id=e), metadata=tk.md())
    assert deleted.experiment.deleted
    await refused_unwritten(tk, lambda: tk.run(e), grpc.StatusCode.FAILED_PRECONDITION, "deleted")
    listed = await tk.api.ListExperiments(
        pb.ListExperimentsRequest(view=pb.VIEW_TYPE_DELETED_ONLY), metadata=tk.md()
    )
    assert e in [x.experiment_id for x in listed.experiments]
    restored = await tk.api.RestoreExperiment(pb.RestoreExperimentRequest(experiment_id=e), metadata=tk.md())
    assert not restored.experiment.deleted
    assert (await tk.run(e)).info.experiment_id == e


async def test_list_experiments_pages_through_all_of_them(tk: TrackingStack) -> None:
    for _ in range(5):
        await tk.experiment()
    everything = await tk.api.ListExperiments(
        pb.ListExperimentsRequest(view=pb.VIEW_TYPE_ALL, page_size=1000), metadata=tk.md()
    )
    seen: list[str] = []
    token = ""
    while True:
        page = await tk.api.ListExperiments(
            pb.ListExperimentsRequest(view=pb.VIEW_TYPE_ALL, page_size=2, page_token=token), metadata=tk.md()
        )
        seen += [x.experiment_id for x in page.experiments]
        token = page.next_page_token
        if not token:
            break
    assert seen == [x.experiment_id for x in everything.experiments] and len(seen) >= 5
    await refused(
        tk.api.ListExperiments(pb.ListExperimentsRequest(page_token="garbage!"), metadata=tk.md()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )


@pytest.mark.parametrize(
    ("name", "words"),
    [("", ["name", "empty"]), ("bell\x07", ["name", "U+0007"]), ("x" * 251, ["name", "251", "250"])],
)
async def test_bad_experiment_names_are_refused_and_nothing_is_written(
    tk: TrackingStack, name: str, words: list[str]
) -> None:
    await refused_unwritten(
        tk,
        lambda: tk.api.CreateExperiment(pb.CreateExperimentRequest(name=name), metadata=tk.md()),
        grpc.StatusCode.INVALID_ARGUMENT,
        *words,
    )


async def test_retried_creates_with_one_idempotency_key_return_the_first_result(tk: TrackingStack) -> None:
    key = uuid.uuid4().hex
    request = pb.CreateExperimentRequest(name=f"idem-{key[:8]}")
    first = await tk.api.CreateExperiment(request, metadata=tk.md(key))
    head = await tk.head()
    again = await tk.api.CreateExperiment(request, metadata=tk.md(key))
    assert again.experiment.experiment_id == first.experiment.experiment_id and await tk.head() == head
    start = pb.StartRunRequest(experiment_id=first.experiment.experiment_id, params={"lr": "0.1"})
    run = await tk.api.StartRun(start, metadata=tk.md(key))  # the same key for another call: no clash
    head = await tk.head()
    run_again = await tk.api.StartRun(start, metadata=tk.md(key))
    assert run_again.run.info.run_id == run.run.info.run_id and run_again.run.params == {"lr": "0.1"}
    assert await tk.head() == head


# ---------------------------------------------------------------- runs


async def test_run_lifecycle_reads_back_everything(tk: TrackingStack) -> None:
    exp_name = f"auto-{uuid.uuid4().hex[:6]}"
    started = await tk.api.StartRun(
        pb.StartRunRequest(
            experiment_name=exp_name,
            create_experiment=True,
            params={"lr": "0.01"},
            tags={"team": "nlp"},
            source=pb.RunSource(git_commit="abc123", entry_point="train.py", host="box", user="ana"),
            start_time_ms=1_000,
        ),
        metadata=tk.md(),
    )
    info = started.run.info
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", info.name), info.name
    assert (
        info.status == pb.RUN_STATUS_RUNNING
        and info.start_time_ms == 1_000
        and not info.HasField("end_time_ms")
    )
    assert started.run.params == {"lr": "0.01"} and info.source.git_commit == "abc123"
    r = info.run_id
    await tk.api.LogParams(
        pb.LogParamsRequest(run_id=r, params={"lr": "0.01", "layers": "4"}), metadata=tk.md()
    )
    await tk.api.SetTags(pb.SetTagsRequest(run_id=r, tags={"stage": "dev", "team": "cv"}), metadata=tk.md())
    await tk.api.DeleteTag(pb.DeleteTagRequest(run_id=r, key="stage"), metadata=tk.md())
    await tk.api.RenameRun(pb.RenameRunRequest(run_id=r, name="baseline"), metadata=tk.md())
    ds = pb.DatasetInput(
        name="train",
        digest="sha256:aa",
        source_type="s3",
        source="s3://b/train",
        context="training",
        dataset_schema='{"cols": 3}',
        tags={"split": "holdout"},
    )
    for _ in range(2):  # once per (name, digest, context)
        await tk.api.LogDatasetInput(pb.LogDatasetInputRequest(run_id=r, dataset=ds), metadata=tk.md())
    await tk.log(r, [("loss", 0.5, 0), ("loss", 0.25, 1), ("acc", 0.75, 1)])
    finished = await tk.api.FinishRun(
        pb.FinishRunRequest(run_id=r, status=FINISHED, end_time_ms=9_000), metadata=tk.md()
    )
    assert finished.info.status == FINISHED and finished.info.end_time_ms == 9_000
    run = (await tk.api.GetRun(pb.GetRunRequest(run_id=r), metadata=tk.md())).run
    assert (
        run.info.name == "baseline"
        and run.params == {"lr": "0.01", "layers": "4"}
        and run.tags == {"team": "cv"}
    )
    assert [(d.name, d.context, d.dataset_schema, dict(d.tags)) for d in run.datasets] == [
        ("train", "training", '{"cols": 3}', {"split": "holdout"})
    ]
    summary = {m.key: (m.last, m.last_step, m.min, m.max, m.count) for m in run.metrics}
    assert summary == {"acc": (0.75, 1, 0.75, 0.75, 1), "loss": (0.25, 1, 0.25, 0.5, 2)}
    await tk.api.DeleteRun(pb.DeleteRunRequest(run_id=r), metadata=tk.md())
    assert (await tk.api.GetRun(pb.GetRunRequest(run_id=r), metadata=tk.md())).run.info.deleted
    await refused_unwritten(
        tk,
        lambda: tk.api.SetTags(pb.SetTagsRequest(run_id=r, tags={"a": "b"}), metadata=tk.md()),
        grpc.StatusCode.FAILED_PRECONDITION,
        "deleted",
    )
    await tk.api.RestoreRun(pb.RestoreRunRequest(run_id=r), metadata=tk.md())
    assert not (await tk.api.GetRun(pb.GetRunRequest(run_id=r), metadata=tk.md())).run.info.deleted


async def test_concurrent_starts_in_a_new_experiment_share_one_experiment(tk: TrackingStack) -> None:
    name = f"sweep-{uuid.uuid4().hex[:6]}"

    async def start() -> pb.Run:
        request = pb.StartRunRequest(experiment_name=name, create_experiment=True)
        for _ in range(5):  # UNAVAILABLE while the winner's create is in flight: clients retry it
            try:
                return (await tk.api.StartRun(request, metadata=tk.md())).run
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
        raise AssertionError("still unavailable")

    runs = await asyncio.gather(*(start() for _ in range(8)))
    assert len({r.info.experiment_id for r in runs}) == 1 and len({r.info.run_id for r in runs}) == 8
    experiments = await tk.api.ListExperiments(
        pb.ListExperimentsRequest(view=pb.VIEW_TYPE_ALL, page_size=1000), metadata=tk.md()
    )
    assert [x.name for x in experiments.experiments].count(name) == 1


async def test_long_param_values_are_stored_and_found_by_their_whole_value(tk: TrackingStack) -> None:
    e = (await tk.experiment()).experiment_id
    value = secrets.token_hex(2992)  # 5984 random characters: more than a B-tree entry can hold
    near = value[:200] + "different"
    a = (await tk.run(e, params={"config": value})).info.run_id
    b = (await tk.run(e, params={"config": near})).info.run_id
    for wanted, run in ((value, a), (near, b)):
        reply = await tk.api.SearchRuns(
            pb.SearchRunsRequest(experiment_ids=[e], filter=f"params.config = '{wanted}'"), metadata=tk.md()
        )
        assert [r.info.run_id for r in reply.runs] == [run]


async def test_a_changed_param_is_refused_and_nothing_of_the_call_is_written(tk: TrackingStack) -> None:
    r = (await tk.run((await tk.experiment()).experiment_id, params={"lr": "0.01"})).info.run_id
    before = await tk.head()  # before the call exists: a grpc.aio call starts when it is made
    call = tk.api.LogParams(
        pb.LogParamsRequest(run_id=r, params={"lr": "0.1", "layers": "4"}), metadata=tk.md()
    )
    err = await refused(call, grpc.StatusCode.INVALID_ARGUMENT, "lr", "0.01", "0.1")
    assert await tk.head() == before
    assert status_details(err)["field_violations"][0][0] == "params['lr']"  # type: ignore[index]
    assert (await tk.api.GetRun(pb.GetRunRequest(run_id=r), metadata=tk.md())).run.params == {"lr": "0.01"}


async def test_a_run_batch_is_written_all_or_none_and_a_resend_is_replayed(tk: TrackingStack) -> None:
    r = (await tk.run((await tk.experiment()).experiment_id)).info.run_id
    metrics = pb.MetricBatch(keys=["loss", "loss"], values=[0.5, 0.25], steps=[0, 1])
    good = pb.DatasetInput(name="train", digest="sha256:aa", context="training")
    bad = pb.DatasetInput(name="eval", digest="")  # refused by the dataset rule, after all the rest
    await refused_unwritten(
        tk,
        lambda: tk.api.LogRunBatch(
            pb.LogRunBatchRequest(
                run_id=r,
                name="b1",
                params={"lr": "0.1"},
                tags={"t": "v"},
                metrics=metrics,
                datasets=[good, bad],
                idempotency_key="batch-1",
            ),
            metadata=tk.md(),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "digest",
    )
    request = pb.LogRunBatchRequest(
        run_id=r,
        name="b1",
        params={"lr": "0.1"},
        tags={"t": "v"},
        metrics=metrics,
        datasets=[good],
        idempotency_key="batch-1",
    )
    first = await tk.api.LogRunBatch(request, metadata=tk.md())
    head = await tk.head()
    again = await tk.api.LogRunBatch(request, metadata=tk.md())
    assert (first.replayed, again.replayed) == (False, True) and await tk.head() == head
    run = (await tk.api.GetRun(pb.GetRunRequest(run_id=r), metadata=tk.md())).run
    assert (run.info.name, dict(run.params), dict(run.tags)) == ("b1", {"lr": "0.1"}, {"t": "v"})
    assert [(m.key, m.count, m.last) for m in run.metrics] == [("loss", 2, 0.25)]
    assert [d.name for d in run.datasets] == ["train"]
    await refused_unwritten(
        tk,
        lambda: tk.api.LogRunBatch(pb.LogRunBatchRequest(run_id="no-such-run"), metadata=tk.md()),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_a_finished_run_refuses_data_but_takes_tags(tk: TrackingStack) -> None:
    r = (await tk.run((await tk.experiment()).experiment_id)).info.run_id
    await tk.api.FinishRun(pb.FinishRunRequest(run_id=r, status=FAILED), metadata=tk.md())
    await refused_unwritten(
        tk, lambda: tk.log(r, [("loss", 1.0, 0)]), grpc.StatusCode.FAILED_PRECONDITION, "FAILED", r
    )
    await refused_unwritten(
        tk,
        lambda: tk.api.LogParams(pb.LogParamsRequest(run_id=r, params={"a": "1"}), metadata=tk.md()),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await refused_unwritten(
        tk,
        lambda: tk.api.FinishRun(pb.FinishRunRequest(run_id=r, status=KILLED), metadata=tk.md()),
        grpc.StatusCode.FAILED_PRECONDITION,
        "already finished",
    )
    batches = [pb.MetricBatch(run_id=r, keys=["x"], values=[1.0])]
    await refused_unwritten(
        tk,
        lambda: tk.api.LogMetrics(_stream(batches), metadata=tk.md()),
        grpc.StatusCode.FAILED_PRECONDITION,
        "batch 0",
    )
    await tk.api.SetTags(pb.SetTagsRequest(run_id=r, tags={"note": "diverged"}), metadata=tk.md())


async def test_unknown_ids_and_bad_input_are_named(tk: TrackingStack) -> None:
    e = (await tk.experiment()).experiment_id
    await refused(
        tk.api.GetRun(pb.GetRunRequest(run_id="nope"), metadata=tk.md()), grpc.StatusCode.NOT_FOUND, "'nope'"
    )
    await refused_unwritten(
        tk,
        lambda: tk.api.LogParams(pb.LogParamsRequest(run_id="nope", params={"a": "1"}), metadata=tk.md()),
        grpc.StatusCode.NOT_FOUND,
        "'nope'",
    )
    await refused(
        tk.api.GetRun(pb.GetRunRequest(), metadata=tk.md()), grpc.StatusCode.INVALID_ARGUMENT, "run_id"
    )
    await refused_unwritten(tk, lambda: tk.run("nope"), grpc.StatusCode.NOT_FOUND, "'nope'")
    await refused_unwritten(
        tk,
        lambda: tk.api.StartRun(pb.StartRunRequest(experiment_name="no-such-exp"), metadata=tk.md()),
        grpc.StatusCode.NOT_FOUND,
        "no-such-exp",
    )
    await refused_unwritten(
        tk, lambda: tk.run(e, tags={"bad key!": "x"}), grpc.StatusCode.INVALID_ARGUMENT, "bad key!"
    )
    r = (await tk.run(e)).info.run_id
    await refused_unwritten(
        tk,
        lambda: tk.api.LogMetricsBatch(
            pb.MetricBatch(run_id=r, keys=["a", "b"], values=[1.0]), metadata=tk.md()
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "2 keys, 1 values",
    )
    big = pb.MetricBatch(run_id=r, keys=["a"] * 100_001, values=[0.0] * 100_001)
    await refused_unwritten(
        tk,
        lambda: tk.api.LogMetricsBatch(big, metadata=tk.md()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "100001",
        "100000",
    )
    good, bad = (
        pb.MetricBatch(run_id=r, keys=["a"], values=[1.0], idempotency_key=k) for k in ("ok", "has space")
    )
    await refused(
        tk.api.LogMetrics(_stream([good, bad]), metadata=tk.md()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "batch 1",
        "idempotency_key",
    )
    await refused(
        tk.api.GetMetricHistory(
            pb.GetMetricHistoryRequest(run_id=r, key="a", max_points=2), metadata=tk.md()
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "max_points",
    )


async def test_nested_runs_live_under_a_parent_of_the_same_experiment(tk: TrackingStack) -> None:
    e, other = (await tk.experiment()).experiment_id, (await tk.experiment()).experiment_id
    parent = (await tk.run(e)).info.run_id
    child = await tk.run(e, parent_run_id=parent, name="fold-1")
    assert child.info.parent_run_id == parent
    grandchild = await tk.run(e, parent_run_id=child.info.run_id)
    assert grandchild.info.parent_run_id == child.info.run_id
    await refused_unwritten(tk, lambda: tk.run(e, parent_run_id="ghost"), grpc.StatusCode.NOT_FOUND, "ghost")
    await refused_unwritten(
        tk, lambda: tk.run(other, parent_run_id=parent), grpc.StatusCode.INVALID_ARGUMENT, "parent_run_id", e
    )


# ---------------------------------------------------------------- metrics


def _stream(batches: list[pb.MetricBatch]) -> AsyncIterator[pb.MetricBatch]:
    async def gen() -> AsyncIterator[pb.MetricBatch]:
        for b in batches:
            yield b

    return gen()


async def _history(
    tk: TrackingStack, run_id: str, key: str, max_points: int = 0
) -> pb.GetMetricHistoryResponse:
    return await tk.api.GetMetricHistory(
        pb.GetMetricHistoryRequest(run_id=run_id, key=key, max_points=max_points), metadata=tk.md()
    )


async def test_nan_and_infinities_round_trip(tk: TrackingStack) -> None:
    r = (await tk.run((await tk.experiment()).experiment_id)).info.run_id
    nan, inf = float("nan"), float("inf")
    await tk.log(r, [("x", nan, 0), ("x", inf, 1), ("x", -inf, 2), ("x", 1.5, 3), ("y", nan, 0)])
    h = await _history(tk, r, "x")
    assert (
        math.isnan(h.values[0]) and list(h.values[1:]) == [inf, -inf, 1.5] and list(h.steps) == [0, 1, 2, 3]
    )
    metrics = {
        m.key: m for m in (await tk.api.GetRun(pb.GetRunRequest(run_id=r), metadata=tk.md())).run.metrics
    }
    x, y = metrics["x"], metrics["y"]
    assert (x.last, x.min, x.max, x.count) == (1.5, -inf, inf, 4)
    assert math.isnan(y.last) and math.isnan(y.min) and math.isnan(y.max) and y.count == 1


async def test_a_resent_batch_with_the_same_key_is_not_written_twice(tk: TrackingStack) -> None:
    r = (await tk.run((await tk.experiment()).experiment_id)).info.run_id

    def batch(i: int) -> pb.MetricBatch:
        return pb.MetricBatch(
            run_id=r,
            keys=["loss"] * 3,
            values=[1.0, 2.0, 3.0],
            steps=[3 * i, 3 * i + 1, 3 * i + 2],
            idempotency_key=f"{r}-{i}",
        )

    first = await tk.api.LogMetrics(_stream([batch(0), batch(1)]), metadata=tk.md())
    assert (first.batches, first.points, first.replayed_batches) == (2, 6, 0)
    # the connection dropped before the reply: the client resends everything it had not seen acknowledged
    again = await tk.api.LogMetrics(_stream([batch(0), batch(1), batch(2)]), metadata=tk.md())
    assert (again.batches, again.points, again.replayed_batches) == (3, 9, 2)
    unary = await tk.api.LogMetricsBatch(batch(2), metadata=tk.md())
    assert unary.replayed_batches == 1
    assert list((await _history(tk, r, "loss")).steps) == list(range(9))
    # even once the run has finished, a resent batch is a replay, not an error
    await tk.api.FinishRun(pb.FinishRunRequest(run_id=r, status=FINISHED), metadata=tk.md())
    late = await tk.api.LogMetricsBatch(batch(1), metadata=tk.md())
    assert late.replayed_batches == 1
    assert (await _history(tk, r, "loss")).total_points == 9


async def test_concurrent_batches_all_land_and_none_after_the_finish(tk: TrackingStack) -> None:
    r = (await tk.run((await tk.experiment()).experiment_id)).info.run_id

    async def send(i: int) -> int:
        try:
            await tk.log(r, [("a", float(i), i), ("b", float(i), i)])
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()
            return 0
        return 1

    accepted = sum(await asyncio.gather(*(send(i) for i in range(20))))
    assert accepted == 20 and (await _history(tk, r, "a")).total_points == 20
    outcomes = await asyncio.gather(
        *(send(i) for i in range(20, 40)),
        tk.api.FinishRun(pb.FinishRunRequest(run_id=r, status=FINISHED), metadata=tk.md()),
    )
    late = sum(x for x in outcomes if isinstance(x, int))
    assert (await _history(tk, r, "b")).total_points == 20 + late
    types = [e.type for e in await tk.platform.stores["tracking"].read_stream(f"run-{r}")]
    assert "MetricsLogged" not in types[types.index("RunFinished") :]


async def test_metric_history_of_100k_points_whole_or_downsampled_with_extremes(tk: TrackingStack) -> None:
    r = (await tk.run((await tk.experiment()).experiment_id)).info.run_id
    n = 100_000
    values = [math.sin(i / 500.0) for i in range(n)]
    values[54_321], values[77_777] = 1e6, -1e6  # spikes a plot must show
    batches = [
        pb.MetricBatch(
            run_id=r, keys=["loss"] * 10_000, values=values[i : i + 10_000], steps=range(i, i + 10_000)
        )
        for i in range(0, n, 10_000)
    ]
    assert (await tk.api.LogMetrics(_stream(batches), metadata=tk.md())).points == n
    for max_points in (0, n, n + 1):
        whole = await _history(tk, r, "loss", max_points)
        assert not whole.downsampled and whole.total_points == n
        assert list(whole.steps) == list(range(n)) and list(whole.values) == values
    small = await _history(tk, r, "loss", 1_000)
    assert small.downsampled and small.total_points == n and 4 <= len(small.values) <= 1_000
    assert max(small.values) == 1e6 and min(small.values) == -1e6
    assert small.steps[0] == 0 and small.steps[-1] == n - 1 and list(small.steps) == sorted(small.steps)


async def test_history_is_ordered_by_step_whatever_the_logging_order(tk: TrackingStack) -> None:
    r = (await tk.run((await tk.experiment()).experiment_id)).info.run_id
    await tk.log(r, [("m", 3.0, 3), ("n", 0.0, 0), ("m", 1.0, 1)])
    await tk.log(r, [("m", 2.0, 2), ("m", 0.0, 0), ("m", 1.5, 1)])
    h = await _history(tk, r, "m")
    assert list(h.steps) == [0, 1, 1, 2, 3] and list(h.values) == [0.0, 1.0, 1.5, 2.0, 3.0]
    assert {
        m.key: m.last for m in (await tk.api.GetRun(pb.GetRunRequest(run_id=r), metadata=tk.md())).run.metrics
    }["m"] == 3.0
    assert (await _history(tk, r, "absent")).total_points == 0
    await refused(_history(tk, "ghost", "m"), grpc.StatusCode.NOT_FOUND, "ghost")


async def test_compare_runs_marks_differences(tk: TrackingStack) -> None:
    e = (await tk.experiment()).experiment_id
    a = (await tk.run(e, params={"lr": "0.1", "opt": "adam"}, tags={"t": "x"})).info.run_id
    b = (await tk.run(e, params={"lr": "0.2", "opt": "adam"}, tags={"t": "x"})).info.run_id
    c = (await tk.run(e, params={"lr": "0.1"})).info.run_id
    await tk.log(a, [("acc", 0.5, 0), ("acc", 0.7, 1)])
    await tk.log(b, [("acc", 0.9, 0)])
    reply = await tk.api.CompareRuns(pb.CompareRunsRequest(run_ids=[a, b, c]), metadata=tk.md())
    assert [x.run_id for x in reply.runs] == [a, b, c]
    params = {p.key: ([(v.present, v.value) for v in p.values], p.differs) for p in reply.params}
    assert params == {
        "lr": ([(True, "0.1"), (True, "0.2"), (True, "0.1")], True),
        "opt": ([(True, "adam"), (True, "adam"), (False, "")], True),
    }
    assert {t.key: t.differs for t in reply.tags} == {"t": True}
    (acc,) = reply.metrics
    assert [(v.present, v.summary.last, v.summary.min, v.summary.max) for v in acc.values] == [
        (True, 0.7, 0.5, 0.7),
        (True, 0.9, 0.9, 0.9),
        (False, 0.0, 0.0, 0.0),
    ]
    await refused(
        tk.api.CompareRuns(pb.CompareRunsRequest(run_ids=[a, a]), metadata=tk.md()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "once",
    )
    await refused(
        tk.api.CompareRuns(pb.CompareRunsRequest(run_ids=[a, "ghost"]), metadata=tk.md()),
        grpc.StatusCode.NOT_FOUND,
        "ghost",
    )


# ---------------------------------------------------------------- views


async def test_every_tracking_view_rebuilds_to_the_live_one(tk: TrackingStack) -> None:
    """Runs last in this module, over everything the tests above wrote."""
    for projection in (ExperimentsView(), RunsView()):
        await assert_rebuild_equals_live(tk.platform.pool, projection, tk.platform.stores)
