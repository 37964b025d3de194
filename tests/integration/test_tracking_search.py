"""SearchRuns over a fixed set of runs: MLflow filter syntax (plus OR, NOT, parentheses), order, paging."""

from __future__ import annotations

import math
import operator
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from modelog._gen.tracking.v1 import tracking_pb2 as pb
from modelog_platform.grpc_errors import status_details
from modelog_services.tracking.filter import (
    And,
    Comparison,
    Entity,
    Expr,
    Not,
    Or,
    allowed_ops,
    format_filter,
)
from tests.integration.test_tracking_api import TrackingStack, open_stack, refused

pytestmark = pytest.mark.asyncio

NAN = math.nan


@dataclass(frozen=True)
class Seed:
    name: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    status: int  # RunStatus; RUNNING stays open
    dataset: tuple[str, str] | None = None  # (name, context)
    deleted: bool = False


FIN, FAIL, RUNNING, KILL = (
    pb.RUN_STATUS_FINISHED,
    pb.RUN_STATUS_FAILED,
    pb.RUN_STATUS_RUNNING,
    pb.RUN_STATUS_KILLED,
)
SEEDS = [
    Seed("alpha", {"lr": "0.01", "opt": "adam"}, {"team": "nlp", "owner": "Ana"},
         {"acc": 0.95, "loss": 0.10}, FIN, ("train", "training")),
    Seed("beta", {"lr": "0.1", "opt": "sgd"}, {"team": "cv"}, {"acc": 0.80, "loss": 0.30}, FIN),
    Seed("gamma", {"lr": "0.01", "opt": "sgd"}, {"team": "nlp-large"}, {"acc": 0.91, "loss": NAN}, FAIL),
    Seed("delta", {"lr": "0.001"}, {}, {"loss": 0.50}, RUNNING, ("eval", "evaluation")),
    Seed("epsilon", {"lr": "0.1", "opt": "adam"}, {"team": "NLP"}, {"acc": 0.99, "loss": 0.05}, KILL),
    Seed("zeta", {"lr": "0.01"}, {}, {"acc": 0.97}, FIN, deleted=True),
]  # fmt: skip


@dataclass
class Seeded:
    tk: TrackingStack
    experiment_id: str
    ids: list[str]  # SEEDS order; run i started at (i + 1) * 1000 ms

    def names(self, runs: list[pb.Run]) -> list[str]:
        return [SEEDS[self.ids.index(r.info.run_id)].name for r in runs]

    async def search(self, filter: str = "", order_by: tuple[str, ...] = (), **fields: object) -> list[str]:
        """Names of every matching run, in order, following page tokens to the end."""
        out: list[str] = []
        token = ""
        while True:
            request = pb.SearchRunsRequest(
                experiment_ids=[self.experiment_id],
                filter=filter,
                order_by=order_by,
                page_token=token,
                **fields,
            )
            reply = await self.tk.api.SearchRuns(request, metadata=self.tk.md())
            out += self.names(list(reply.runs))
            token = reply.next_page_token
            if not token:
                return out


@pytest.fixture(scope="module")
async def seeded(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Seeded]:
    async with open_stack(pg_dsn, tmp_path_factory.mktemp("home")) as tk:
        e = (await tk.experiment("search")).experiment_id
        await tk.run((await tk.experiment("elsewhere")).experiment_id, params={"lr": "0.01"})  # never found
        ids = []
        for i, s in enumerate(SEEDS):
            run = await tk.run(e, name=s.name, params=s.params, tags=s.tags, start_time_ms=(i + 1) * 1000)
            r = run.info.run_id
            ids.append(r)
            if s.metrics:
                await tk.log(r, [(k, v, 0) for k, v in s.metrics.items()])
            if s.dataset:
                ds = pb.DatasetInput(name=s.dataset[0], digest="d1", context=s.dataset[1])
                await tk.api.LogDatasetInput(
                    pb.LogDatasetInputRequest(run_id=r, dataset=ds), metadata=tk.md()
                )
            if s.status != pb.RUN_STATUS_RUNNING:
                request = pb.FinishRunRequest(run_id=r, status=s.status, end_time_ms=(i + 1) * 1000 + 500)
                await tk.api.FinishRun(request, metadata=tk.md())
            if s.deleted:
                await tk.api.DeleteRun(pb.DeleteRunRequest(run_id=r), metadata=tk.md())
        yield Seeded(tk, e, ids)


FILTERS = [
    ("metrics.acc > 0.9", {"alpha", "gamma", "epsilon"}),
    ("params.lr = '0.01'", {"alpha", "gamma"}),
    ("tags.team LIKE 'nlp%'", {"alpha", "gamma"}),
    ("tags.team ILIKE 'nlp%'", {"alpha", "gamma", "epsilon"}),
    ("attributes.status = 'FINISHED'", {"alpha", "beta"}),
    ("params.lr IN ('0.1', '0.001')", {"beta", "delta", "epsilon"}),
    ("params.lr NOT IN ('0.01')", {"beta", "delta", "epsilon"}),
    ("params.opt IS NULL", {"delta"}),
    ("metrics.acc IS NULL", {"delta"}),
    ("tags.owner IS NOT NULL", {"alpha"}),
    ("params.opt != 'adam'", {"beta", "gamma"}),  # a run without the param does not compare
    ("metrics.acc > 0.9 OR params.lr = '0.1'", {"alpha", "gamma", "epsilon", "beta"}),
    ("NOT params.lr = '0.01'", {"beta", "delta", "epsilon"}),
    ("(params.lr = '0.01' OR tags.team = 'cv') AND metrics.loss < 0.2", {"alpha"}),
    ("NOT (metrics.acc >= 0.95 OR attributes.status = 'RUNNING')", {"beta", "gamma"}),
    ("metrics.loss > 0.2", {"beta", "delta"}),  # NaN is not greater than anything
    ("metrics.loss != 0.1", {"beta", "gamma", "delta", "epsilon"}),  # ... but it differs from everything
    ("status IN ('FAILED', 'KILLED')", {"gamma", "epsilon"}),
    ("attributes.run_name LIKE '%a'", {"alpha", "beta", "gamma", "delta"}),
    ("attributes.start_time >= 3000 and attributes.start_time < 5000", {"gamma", "delta"}),
    ("attributes.end_time IS NULL", {"delta"}),
    ("datasets.context = 'training'", {"alpha"}),
    ("datasets.name IN ('eval')", {"delta"}),
    (
        "metrics.acc > 0.9 and params.lr = '0.01' and tags.team LIKE 'nlp%' "
        "and attributes.status = 'FINISHED'",
        {"alpha"},
    ),
    ("params.`lr` = \"0.1\" AND NOT tags.team = 'cv'", {"epsilon"}),
]


@pytest.mark.parametrize(("filter", "expected"), FILTERS, ids=[f for f, _ in FILTERS])
async def test_filter_finds_exactly_the_expected_runs(
    seeded: Seeded, filter: str, expected: set[str]
) -> None:
    found = await seeded.search(filter)
    assert sorted(found) == sorted(expected)


async def test_deleted_runs_are_found_only_when_asked_for(seeded: Seeded) -> None:
    assert await seeded.search("params.lr = '0.01'", view=pb.VIEW_TYPE_DELETED_ONLY) == ["zeta"]
    assert sorted(await seeded.search("params.lr = '0.01'", view=pb.VIEW_TYPE_ALL)) == [
        "alpha",
        "gamma",
        "zeta",
    ]


ORDERS = [
    ((), ["epsilon", "delta", "gamma", "beta", "alpha"]),  # start_time DESC
    (("metrics.acc DESC",), ["epsilon", "alpha", "gamma", "beta", "delta"]),  # missing last
    (("metrics.acc ASC",), ["beta", "gamma", "alpha", "epsilon", "delta"]),  # missing last here too
    (("metrics.loss ASC",), ["epsilon", "alpha", "beta", "delta", "gamma"]),  # NaN after the numbers
    (("metrics.loss DESC",), ["delta", "beta", "alpha", "epsilon", "gamma"]),
    (("params.opt",), ["epsilon", "alpha", "gamma", "beta", "delta"]),  # ties: start_time DESC
    (("params.opt DESC", "attributes.start_time ASC"), ["beta", "gamma", "alpha", "epsilon", "delta"]),
    (("attributes.end_time DESC",), ["epsilon", "gamma", "beta", "alpha", "delta"]),
    (("tags.team ASC",), ["epsilon", "beta", "alpha", "gamma", "delta"]),  # byte order: 'NLP' < 'cv'
]


@pytest.mark.parametrize(("order_by", "expected"), ORDERS, ids=[" ".join(o) or "default" for o, _ in ORDERS])
async def test_order_puts_missing_values_last_and_pages_agree(
    seeded: Seeded, order_by: tuple[str, ...], expected: list[str]
) -> None:
    assert await seeded.search("", order_by) == expected
    assert await seeded.search("", order_by, page_size=2) == expected  # keyset pages, same order
    assert await seeded.search("", order_by, page_size=1) == expected


async def test_search_returns_whole_runs(seeded: Seeded) -> None:
    reply = await seeded.tk.api.SearchRuns(
        pb.SearchRunsRequest(experiment_ids=[seeded.experiment_id], filter="attributes.run_name = 'alpha'"),
        metadata=seeded.tk.md(),
    )
    (run,) = reply.runs
    assert run.params == {"lr": "0.01", "opt": "adam"} and run.tags == {"team": "nlp", "owner": "Ana"}
    assert {m.key: m.last for m in run.metrics} == {"acc": 0.95, "loss": 0.10}
    assert [(d.name, d.context) for d in run.datasets] == [("train", "training")]
    assert run.info.status == pb.RUN_STATUS_FINISHED and run.info.end_time_ms == 1500


async def test_a_malformed_filter_names_the_column_and_nothing_is_searched(seeded: Seeded) -> None:
    call = seeded.tk.api.SearchRuns(
        pb.SearchRunsRequest(filter="metrics.acc >> 0.9"), metadata=seeded.tk.md()
    )
    err = await refused(call, grpc.StatusCode.INVALID_ARGUMENT, "filter", "column 14")
    assert status_details(err)["metadata"] == {"column": "14"}
    for bad, column in [
        ("params.lr = 0.01", 13),
        ("metrics.acc > 'x'", 15),
        ("foo.bar = 'x'", 1),
        ("(metrics.a > 1", 1),
    ]:
        call = seeded.tk.api.SearchRuns(pb.SearchRunsRequest(filter=bad), metadata=seeded.tk.md())
        await refused(call, grpc.StatusCode.INVALID_ARGUMENT, f"column {column}")
    call = seeded.tk.api.SearchRuns(
        pb.SearchRunsRequest(order_by=["metrics.acc SIDEWAYS"]), metadata=seeded.tk.md()
    )
    await refused(call, grpc.StatusCode.INVALID_ARGUMENT, "order_by", "column 13")


async def test_a_garbled_or_foreign_page_token_is_invalid_argument(seeded: Seeded) -> None:
    api, md = seeded.tk.api, seeded.tk.md()
    first = await api.SearchRuns(
        pb.SearchRunsRequest(order_by=["metrics.acc DESC"], page_size=1), metadata=md
    )
    assert first.next_page_token
    for token in ("garbage", first.next_page_token[:-3], "e30", first.next_page_token + "x"):
        call = api.SearchRuns(
            pb.SearchRunsRequest(order_by=["metrics.acc DESC"], page_token=token), metadata=md
        )
        await refused(call, grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    other = pb.SearchRunsRequest(order_by=["metrics.loss DESC"], page_token=first.next_page_token)
    await refused(api.SearchRuns(other, metadata=md), grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    await refused(
        api.SearchRuns(pb.SearchRunsRequest(page_size=5000), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_size",
    )


# ---------------------------------------------------------------- against a reference


def _like(pattern: str, value: str, fold: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if fold else re.DOTALL) is not None


def _compare(op: str, have: object, want: object) -> bool:
    if op == "IN":
        return have in want  # type: ignore[operator]
    if op == "NOT IN":
        return have not in want  # type: ignore[operator]
    if op in ("LIKE", "ILIKE"):
        return _like(str(want), str(have), op == "ILIKE")
    return bool(OPS[op](have, want))


OPS = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
STATUS_NAMES = {FIN: "FINISHED", FAIL: "FAILED", RUNNING: "RUNNING", KILL: "KILLED"}


def evaluate(expr: Expr, i: int) -> bool:
    """What a filter means for seed i, in plain Python (IEEE comparisons for NaN)."""
    if isinstance(expr, Not):
        return not evaluate(expr.item, i)
    if isinstance(expr, And | Or):
        results = [evaluate(e, i) for e in expr.items]
        return all(results) if isinstance(expr, And) else any(results)
    s, c = SEEDS[i], expr
    if c.entity == "dataset":
        fields = {"name": s.dataset[0], "context": s.dataset[1], "digest": "d1"} if s.dataset else None
        return fields is not None and _compare(c.op, fields[c.key], c.value)
    found: dict[str, object] = {
        "metric": s.metrics,
        "param": s.params,
        "tag": s.tags,
        "attribute": {
            "run_name": s.name,
            "status": STATUS_NAMES[s.status],
            "start_time": (i + 1) * 1000,
            **({} if s.status == RUNNING else {"end_time": (i + 1) * 1000 + 500}),
        },
    }[c.entity]  # type: ignore[assignment]
    have = found.get(c.key)  # type: ignore[attr-defined]
    if c.op in ("IS NULL", "IS NOT NULL"):
        return (have is None) == (c.op == "IS NULL")
    return have is not None and _compare(c.op, have, c.value)


VOCABULARY: list[tuple[Entity, str, list[object]]] = [
    ("metric", "acc", [0.8, 0.91, 0.95, 0.5]),
    ("metric", "loss", [0.05, 0.1, 0.3, 1.0]),
    ("metric", "nothing", [0.0]),
    ("param", "lr", ["0.01", "0.1", "0.001", "%1", "0._1"]),
    ("param", "opt", ["adam", "sgd", "ADAM", "%d%"]),
    ("tag", "team", ["nlp", "NLP", "nlp%", "c_", "%"]),
    ("tag", "owner", ["Ana", "ana"]),
    ("attribute", "status", ["FINISHED", "FAILED", "RUNNING", "KILLED"]),
    ("attribute", "run_name", ["alpha", "%a", "_eta"]),
    ("attribute", "start_time", [1000, 2500, 3000, 6000]),
    ("attribute", "end_time", [1500, 3500, 9999]),
    ("dataset", "context", ["training", "evaluation", "%ing"]),
    ("dataset", "name", ["train", "eval"]),
]


def random_filter(rnd: random.Random, depth: int = 0) -> Expr:
    if depth < 3 and rnd.random() < 0.45:
        kind = rnd.choice(["and", "or", "not"])
        if kind == "not":
            return Not(random_filter(rnd, depth + 1))
        items = tuple(random_filter(rnd, depth + 1) for _ in range(rnd.randint(2, 3)))
        return And(items) if kind == "and" else Or(items)
    entity, key, values = rnd.choice(VOCABULARY)
    op = rnd.choice(allowed_ops(entity, key))
    if op in ("IS NULL", "IS NOT NULL"):
        return Comparison(entity, key, op)
    if op in ("IN", "NOT IN"):
        return Comparison(entity, key, op, tuple(str(v) for v in rnd.sample(values, min(2, len(values)))))
    return Comparison(entity, key, op, rnd.choice(values))  # type: ignore[arg-type]


async def test_two_hundred_random_filters_agree_with_a_reference_evaluator(seeded: Seeded) -> None:
    rnd = random.Random(20240501)
    live = [i for i, s in enumerate(SEEDS) if not s.deleted]
    for _ in range(200):
        expr = random_filter(rnd)
        text = format_filter(expr)
        expected = sorted(SEEDS[i].name for i in live if evaluate(expr, i))
        assert sorted(await seeded.search(text)) == expected, text
