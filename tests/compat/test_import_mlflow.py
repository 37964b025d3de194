"""`modelog import mlflow` against a real `mlflow server` filled by the stock client with a known history.

Everything is compared field by field with what the client wrote (tests/compat/mlflow_history.py),
read back from Modelog over gRPC: the original times and people, full metric histories, file bytes,
versions, stages and aliases. Then: a second import adds nothing, a run still running gets its later
points, as-of answers use the original times, a non-admin cannot import, a killed import resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2 as rpb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog._gen.tracking.v1 import tracking_pb2 as tpb
from modelog._gen.tracking.v1 import tracking_pb2_grpc
from tests.compat.importfix import fill, importer, mlflow_server, summary
from tests.integration.gatewayfix import Platform, run_mlflow, start_platform
from tests.procs import MLFLOW2_PYTHON, MLFLOW_PYTHON, MODELOG

STATUS = {
    "FINISHED": tpb.RUN_STATUS_FINISHED,
    "FAILED": tpb.RUN_STATUS_FAILED,
    "KILLED": tpb.RUN_STATUS_KILLED,
    "RUNNING": tpb.RUN_STATUS_RUNNING,
}


class Stubs:
    def __init__(self, p: Platform) -> None:
        self.channel = grpc.insecure_channel(p.addr)
        self.md = [("authorization", f"Bearer {p.token}")]
        self.tracking = tracking_pb2_grpc.TrackingStub(self.channel)
        self.registry = registry_pb2_grpc.RegistryStub(self.channel)
        self.artifacts = artifacts_pb2_grpc.ArtifactsStub(self.channel)

    def call(self, method: Any, request: Any) -> Any:
        return method(request, metadata=self.md, timeout=30)

    def runs(self) -> dict[str, tpb.Run]:
        return {r.info.name: r for r in self.all_runs()}

    def all_runs(self) -> list[tpb.Run]:
        out: list[tpb.Run] = []
        for exp in self.call(
            self.tracking.ListExperiments, tpb.ListExperimentsRequest(page_size=1000, view=tpb.VIEW_TYPE_ALL)
        ).experiments:
            got = self.call(
                self.tracking.SearchRuns,
                tpb.SearchRunsRequest(
                    experiment_ids=[exp.experiment_id], page_size=1000, view=tpb.VIEW_TYPE_ALL
                ),
            )
            out += got.runs
        return out


@pytest.fixture(scope="module", params=[MLFLOW_PYTHON, MLFLOW2_PYTHON], ids=["mlflow-3.17", "mlflow-2.9"])
def world(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """A server of each MLflow the importer promises to read (from 2.9), filled by its own client."""
    root = tmp_path_factory.mktemp("import-mlflow")
    with mlflow_server(root / "mlflow", request.param) as url:
        known = fill(url, request.param)
        up, p = start_platform(root / "modelog")
        try:
            first = importer(p.addr, p.token, root / "cli", "mlflow", "--from", url, "--json")
            yield {
                "url": url,
                "known": known,
                "p": p,
                "first": first,
                "root": root,
                "stubs": Stubs(p),
                "python": request.param,
            }
        finally:
            up.stop()


def ms(ts: Any) -> int:
    return int(ts.seconds * 1000 + ts.nanos // 1_000_000)


def test_the_first_import_brings_every_kind_and_verifies_itself(world: dict[str, Any]) -> None:
    res = world["first"]
    assert res.returncode == 0, res.stdout + res.stderr
    s = summary(res)
    assert s["failures"] == []
    assert s["seen"]["runs"] == 5 and s["written"]["runs"] == 5
    assert s["written"]["points"] == s["seen"]["points"] == 5 * 300  # loss+auc, loss, loss, loss
    assert s["written"]["models"] == 1 and s["written"]["versions"] == 2
    v = s["verification"]
    assert v["ok"] and v["metric_histories"]["checked"] > 0 and v["metric_histories"]["mismatched"] == 0
    assert v["file_digests"]["checked"] > 0 and v["file_digests"]["mismatched"] == 0


def test_runs_keep_their_times_people_params_tags_metrics_datasets_and_files(world: dict[str, Any]) -> None:
    st, known = world["stubs"], world["known"]
    runs = st.runs()
    for name, want in known["runs"].items():
        got = runs[name]
        assert got.info.start_time_ms == want["start"], name
        assert (got.info.end_time_ms if got.info.HasField("end_time_ms") else None) == want["end"], name
        assert got.info.status == STATUS[want["status"]], name
        assert got.info.source.user == want["user"], name
        assert got.info.deleted == bool(want.get("deleted")), name
        assert dict(got.params) == want["params"], name
        for k, val in want["tags"].items():
            if k != "mlflow.parentRunId":
                assert got.tags[k] == val, (name, k)
        for key, points in want["metrics"].items():
            h = st.call(
                st.tracking.GetMetricHistory, tpb.GetMetricHistoryRequest(run_id=got.info.run_id, key=key)
            )
            assert [
                [s, t, repr(v)] for s, t, v in zip(h.steps, h.timestamps_ms, h.values, strict=True)
            ] == points
        if want["files"]:
            art = st.call(
                st.artifacts.GetVersion,
                apb.GetVersionRequest(
                    ref=apb.VersionRef(name=f"run-{got.info.run_id}"), include_entries=True
                ),
            ).version
            assert {e.path: e.digest.removeprefix("sha256:") for e in art.entries} == want["files"], name
            assert art.run_id == got.info.run_id
    child, parent = runs["tuned-child"], runs["tuned"]
    assert child.info.parent_run_id == parent.info.run_id
    ds = known["runs"]["baseline"]["dataset"]
    got_ds = [(d.name, d.digest, d.context, dict(d.tags)) for d in runs["baseline"].datasets]
    assert (ds["name"], ds["digest"], ds["context"], {"split": "holdout"}) in got_ds


def test_experiments_keep_tags_description_and_lifecycle(world: dict[str, Any]) -> None:
    st = world["stubs"]
    exps = {
        e.name: e
        for e in st.call(st.tracking.ListExperiments, tpb.ListExperimentsRequest(page_size=1000)).experiments
    }
    for name, want in world["known"]["experiments"].items():
        assert name in exps
        assert {k: v for k, v in exps[name].tags.items()} == want["tags"]
        assert exps[name].description == want["description"]


def test_versions_stages_aliases_and_their_original_times_and_people(world: dict[str, Any]) -> None:
    st, want = world["stubs"], world["known"]["models"]["fraud-model"]
    runs = st.runs()
    model = st.call(st.registry.GetModel, rpb.GetModelRequest(name="fraud-model")).model
    assert model.description == want["description"] and dict(model.tags) == want["tags"]
    got = {
        v.version: v
        for v in st.call(
            st.registry.SearchModelVersions, rpb.SearchModelVersionsRequest(model="fraud-model")
        ).versions
    }
    stage = {"Production": rpb.STAGE_PRODUCTION, "Staging": rpb.STAGE_STAGING}
    names = {v["id"]: n for n, v in world["known"]["runs"].items()}
    for number, v in want["versions"].items():
        mine = got[int(number)]
        assert mine.stage == stage[v["stage"]]
        assert mine.description == v["description"]
        assert {k: val for k, val in mine.tags.items() if not k.startswith("modelog.")} == v["tags"]
        assert mine.run_id == runs[names[v["run"]]].info.run_id
        assert ms(mine.created_at) == v["created"]  # the source's time, not the import's
        assert mine.created_by == (v["user"] or "admin")  # MLflow OSS records no user for a version
    aliases = {
        a: st.call(
            st.registry.GetByAlias, rpb.GetByAliasRequest(model="fraud-model", alias=a)
        ).version.version
        for a in want["aliases"]
    }
    assert aliases == {a: int(n) for a, n in want["aliases"].items()}
    # The files of version 1 (runs:/<baseline>/model) came along as a model artifact.
    v1 = got[1]
    art = st.call(
        st.artifacts.GetVersion,
        apb.GetVersionRequest(
            ref=apb.VersionRef(name=v1.artifact_name, version=v1.artifact_version), include_entries=True
        ),
    ).version
    files = world["known"]["runs"]["baseline"]["files"]
    assert {e.path: e.digest.removeprefix("sha256:") for e in art.entries} == {
        k.removeprefix("model/"): d for k, d in files.items() if k.startswith("model/")
    }


def test_history_and_as_of_answer_with_the_original_times(world: dict[str, Any]) -> None:
    st, want = world["stubs"], world["known"]["models"]["fraud-model"]
    hist = st.call(st.registry.History, rpb.HistoryRequest(model="fraud-model")).entries
    created = [e for e in hist if e.type == "ModelVersionCreated"]
    assert [ms(e.occurred_at) for e in created] == [
        want["versions"][n]["created"] for n in sorted(want["versions"])
    ]
    assert all(e.imported_from == f"mlflow:{world['url']}" for e in hist if e.type == "ModelVersionCreated")
    assert all(e.actor == "admin" for e in created)  # the importer, while acted_by is the source's person
    assert {e.acted_by for e in created} == {v["user"] or "admin" for v in want["versions"].values()}
    assert all(ms(e.recorded_at) > want["versions"]["2"]["updated"] for e in created)  # the log's own clock
    between = datetime.fromtimestamp((want["versions"]["1"]["created"] + 1) / 1000, UTC)
    req = rpb.GetModelAsOfRequest(name="fraud-model")
    req.as_of.FromDatetime(between)
    at = st.call(st.registry.GetModelAsOf, req)
    assert [v.version for v in at.versions] == [1]
    req.as_of.FromDatetime(datetime.fromtimestamp((want["created"] - 1000) / 1000, UTC))
    with pytest.raises(grpc.RpcError) as err:
        st.call(st.registry.GetModelAsOf, req)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_second_import_adds_nothing_and_a_running_run_gets_its_later_points(world: dict[str, Any]) -> None:
    p, url, root = world["p"], world["url"], world["root"]
    before = p.heads()
    again = importer(p.addr, p.token, root / "cli", "mlflow", "--from", url, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    s = summary(again)
    assert s["written"] == {
        **s["written"],
        "experiments": 0,
        "runs": 0,
        "points": 0,
        "files": 0,
        "models": 0,
        "versions": 0,
    }
    assert s["seen"]["skipped_runs"] == 4  # every run but the running one
    assert p.heads()["tracking"] == before["tracking"]
    live = world["known"]["live"]
    run_mlflow(
        f"""
from mlflow import MlflowClient
from mlflow.entities import Metric
c = MlflowClient()
c.log_batch({live!r}, metrics=[Metric("loss", 1.0 + i, 1_700_000_000_000 + i, 1000 + i) for i in range(50)])
c.set_terminated({live!r}, "FINISHED", end_time=1_700_000_100_000)
print("{{}}")
""",
        url,
        "",
        python=world["python"],
    )
    later = summary(importer(p.addr, p.token, root / "cli", "mlflow", "--from", url, "--json"))
    assert later["written"]["points"] == 50 and later["written"]["runs"] == 0
    run = world["stubs"].runs()["live"]
    assert run.info.status == tpb.RUN_STATUS_FINISHED and run.info.end_time_ms == 1_700_000_100_000
    assert {m.key: m.count for m in run.metrics} == {"loss": 350}


def test_only_an_admin_may_import_and_a_refused_import_writes_nothing(world: dict[str, Any]) -> None:
    p, url, root = world["p"], world["url"], world["root"]
    member = p.new_token("importer-member", "member")
    before = p.heads()
    res = importer(p.addr, member, root / "member-cli", "mlflow", "--from", url)
    assert res.returncode == 1
    assert "PERMISSION_DENIED" in res.stdout + res.stderr and "only an admin" in res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert p.heads() == before


def test_a_dry_run_and_a_bad_source_write_nothing(world: dict[str, Any]) -> None:
    p, url, root = world["p"], world["url"], world["root"]
    before = p.heads()
    dry = summary(importer(p.addr, p.token, root / "dry-cli", "mlflow", "--from", url, "--dry-run", "--json"))
    assert dry["dry_run"] and dry["seen"]["runs"] == 5 and dry["written"]["runs"] == 0
    for args, says in [
        (["--from", "ftp://x"], "http(s) URL"),
        (["--from", "http://127.0.0.1:1"], "unreachable"),
    ]:
        res = importer(p.addr, p.token, root / "bad-cli", "mlflow", *args, timeout=120)
        assert res.returncode == 1 and says in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert p.heads() == before


def test_a_killed_import_resumes_and_stores_every_point_once(tmp_path: Path) -> None:
    with mlflow_server(tmp_path / "mlflow") as url:
        fill(url, HISTORY_EXTRA_RUNS="12", HISTORY_POINTS="3000")
        up, p = start_platform(tmp_path / "modelog")
        try:
            st = Stubs(p)
            env_home = tmp_path / "cli"
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELOG_", "MLFLOW_"))}
            env.update(MODELOG_URL=p.addr, MODELOG_TOKEN=p.token, MODELOG_HOME=str(env_home))
            proc = subprocess.Popen(
                [*MODELOG, "import", "mlflow", "--from", url, "--workers", "1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 120
            while len(st.runs()) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            partial = len(st.runs())
            assert 0 < partial < 17, "the import was not interrupted mid-way"
            res = importer(p.addr, p.token, env_home, "mlflow", "--from", url, "--json")
            assert res.returncode == 0, res.stdout + res.stderr
            s = summary(res)
            assert s["verification"]["ok"]
            runs = st.runs()
            assert len(runs) == 17
            for name, r in runs.items():
                want = 3000 if name not in ("discarded",) else 0
                counts = {m.key: m.count for m in r.metrics}
                assert all(c == want for c in counts.values()), (name, counts)
        finally:
            up.stop()


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ([("x-modelog-origin", "mlflow:x")], "x-modelog-origin"),  # no time
        ([("x-modelog-origin", "mlflow:x"), ("x-modelog-origin-time", "yesterday")], "x-modelog-origin-time"),
        ([("x-modelog-origin", "mlflow:x"), ("x-modelog-origin-time", "-5")], "x-modelog-origin-time"),
        ([("x-modelog-origin", "mlflow:x"), ("x-modelog-origin-time", "9" * 16)], "x-modelog-origin-time"),
        ([("x-modelog-origin", "m"), ("x-modelog-origin-time", "1"), ("x-modelog-origin-by", "a%0Ab")], "by"),
        ([("x-modelog-origin", "%ff"), ("x-modelog-origin-time", "1")], "x-modelog-origin"),
        ([("x-modelog-origin", "x" * 301), ("x-modelog-origin-time", "1")], "source"),
    ],
)
def test_malformed_origin_headers_are_refused_by_name_and_write_nothing(
    world: dict[str, Any], headers: list[tuple[str, str]], field: str
) -> None:
    p, st = world["p"], world["stubs"]
    before = p.heads()
    with pytest.raises(grpc.RpcError) as err:
        st.tracking.CreateExperiment(
            tpb.CreateExperimentRequest(name="never-made"), metadata=[*st.md, *headers], timeout=30
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert field in err.value.details()
    assert p.heads() == before
