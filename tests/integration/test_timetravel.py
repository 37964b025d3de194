"""Time travel against `modelog up` (a real server process, PostgreSQL and broker): the state recorded at
several instants of a flow (register, alias, approval by another person, a second version, the alias
moved, an archive) is what `as_of` answers afterwards, through gRPC, the SDK and the CLI; and the
lineage graph and timelines answer the same instants from the SDK and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelog
import modelog.artifacts as art
from modelog import errors
from modelog._client import Connection
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._gen.registry.v1 import registry_pb2_grpc
from modelog.asof import ModelAsOf, VersionAsOf, timestamp
from modelog.cli import main as cli_main
from modelog.registry import models, register_model
from tests.integration.test_registry_sdk import Server, _quiet, server
from tests.waiting import wait_until

__all__ = ["server"]


@dataclass
class Recorded:
    """What the live API said at an instant."""

    at: datetime
    aliases: dict[str, int]
    production: list[int]
    stages: dict[int, str]


@dataclass
class Flow:
    server: Server
    run_id: str
    dataset: str
    before: datetime
    instants: list[Recorded]


FED_LATER = (AssertionError, errors.NotFound)
"""What a view fed over the bus says until it has caught up."""


def after(at: datetime) -> None:
    """Until the clock is past `at` by more than its resolution, so that whatever is recorded next is
    recorded strictly after `at`."""
    wait_until(lambda: datetime.now(UTC) > at + timedelta(milliseconds=5), 1, "the clock to pass an instant")


def record(name: str = "churn") -> Recorded:
    m = models.model(name)
    stages = {v.version: v.stage for v in models.search_versions(name)}
    at = datetime.now(UTC)
    after(at)
    return Recorded(at, dict(m.aliases), list(m.production_versions), stages)


def as_alice(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELOG_URL", server.addr)
    monkeypatch.setenv("MODELOG_TOKEN", server.tokens["alice"])
    monkeypatch.setenv("MODELOG_HOME", str(tmp_path / "client-home"))
    monkeypatch.delenv("MODELOG_MODE", raising=False)


def package(tmp_path: Path, run_id: str, tag: str) -> art.ArtifactVersion:
    work = tmp_path / f"package-{tag}"
    work.mkdir()
    (work / "model.pkl").write_bytes(tag.encode() * 1000)
    return art.log_artifacts(work, name="churn-model", kind="model", run_id=run_id, progress=_quiet())


@pytest.fixture(scope="module")
def flow(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    tmp = tmp_path_factory.mktemp("timetravel")
    with pytest.MonkeyPatch.context() as mp:
        as_alice(server, mp, tmp)
        client = modelog.connect()
        before = datetime.now(UTC)
        after(before)
        digest = "sha256:" + "ab" * 32
        with modelog.start_run(experiment="churn-tt", params={"lr": 0.1}) as run:
            run.log_input(name="customers-2026-02", digest=digest, context="training")
        v1 = register_model(run.id, artifact=package(tmp, run.id, "one"), name="churn-tt")
        instants = [record("churn-tt")]
        v1.set_alias("champion")
        v1.request_transition("Staging")
        v1.request_transition("Production", comment="beats the baseline")
        server.registry("bob").get("churn-tt/1").approve(comment="checked")
        instants.append(record("churn-tt"))
        v2 = register_model(run.id, artifact=package(tmp, run.id, "two"), name="churn-tt")
        v2.set_alias("champion")
        v2.request_transition("Staging")
        v2.request_transition("Production")
        server.registry("bob").get("churn-tt/2").approve()  # archives version 1
        instants.append(record("churn-tt"))
        v2.request_transition("Archived")
        instants.append(record("churn-tt"))
        yield Flow(server, run.id, digest, before, instants)
        client.close()


def check(got: ModelAsOf, want: Recorded) -> None:
    assert {a: x.version for a, x in got.aliases.items()} == want.aliases
    assert got.production_versions == want.production
    assert {v.version: v.stage for v in got.versions} == want.stages


def test_as_of_each_recorded_instant_the_sdk_answers_what_was_true_then(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    as_alice(flow.server, monkeypatch, tmp_path)
    assert [r.production for r in flow.instants] == [[], [1], [2], []]  # the flow did what it says
    for want in flow.instants:
        got = models.get("churn-tt", as_of=want.at)
        assert isinstance(got, ModelAsOf)
        check(got, want)

    then = models.get("churn-tt", as_of=flow.instants[1].at)
    assert isinstance(then, ModelAsOf)
    v1 = then.version("champion")
    assert (v1.version, v1.stage, v1.stage_requested_by, v1.stage_approved_by) == (
        1,
        "Production",
        "alice",
        ["bob"],
    )
    assert v1.stage_changed_by == "bob" and v1.run_id == flow.run_id and v1.created_by == "alice"
    assert [d["digest"] for d in v1.datasets] == [flow.dataset]
    assert then.aliases["champion"].set_by == "alice"

    later = models.get("churn-tt@champion", as_of=flow.instants[2].at)
    assert isinstance(later, VersionAsOf) and later.version == 2 and later.stage == "Production"
    archived = models.get("churn-tt/1", as_of=flow.instants[2].at)
    assert isinstance(archived, VersionAsOf) and archived.stage == "Archived"
    assert archived.stage_changed_by == "bob"  # archived by bob's approval of version 2

    with pytest.raises(errors.NotFound, match="did not exist at"):
        models.get("churn-tt", as_of=flow.before)
    with pytest.raises(errors.InvalidArgument, match="in the future"):
        models.get("churn-tt", as_of=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(errors.NotFound, match="no model has ever been named 'nope'"):
        models.get("nope", as_of=flow.instants[0].at)


def test_grpc_and_cli_answer_the_same_instants(flow: Flow) -> None:
    env = {"MODELOG_URL": flow.server.addr, "MODELOG_TOKEN": flow.server.tokens["carol"]}
    with Connection(flow.server.addr, flow.server.tokens["carol"]) as conn:
        stub = registry_pb2_grpc.RegistryStub(conn.channel)
        for want in flow.instants:
            raw = stub.GetModelAsOf(pb.GetModelAsOfRequest(name="churn-tt", as_of=timestamp(want.at)))
            assert {a.alias: a.version for a in raw.aliases} == want.aliases
            assert list(raw.production_versions) == want.production

            out = CliRunner().invoke(
                cli_main, ["models", "show", "churn-tt", "--as-of", want.at.isoformat(), "--json"], env=env
            )
            assert out.exit_code == 0, out.output
            shown = json.loads(out.output)
            assert {a: x["version"] for a, x in shown["aliases"].items()} == want.aliases
            assert {v["version"]: v["stage"] for v in shown["versions"]} == want.stages
    text = CliRunner().invoke(
        cli_main, ["models", "show", "churn-tt", "--as-of", flow.instants[1].at.isoformat()], env=env
    )
    assert "champion -> 1 (set by alice" in text.output
    assert "requested by alice, approved by bob" in text.output

    early = CliRunner().invoke(
        cli_main, ["models", "show", "churn-tt", "--as-of", flow.before.isoformat()], env=env
    )
    assert early.exit_code == 1 and "NOT_FOUND" in early.output and "did not exist at" in early.output
    bad = CliRunner().invoke(cli_main, ["models", "show", "churn-tt", "--as-of", "yesterday"], env=env)
    assert bad.exit_code == 2 and "not an ISO 8601 time" in bad.output


def test_lineage_and_timelines_from_the_sdk_and_the_cli(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOG_URL", flow.server.addr)
    monkeypatch.setenv("MODELOG_TOKEN", flow.server.tokens["carol"])
    t1 = flow.instants[1].at

    def settled() -> modelog.graph.Graph:  # the view is fed by the bus: wait until it has the archive
        g = modelog.lineage("model:churn-tt/2", direction="down")
        assert ("model:churn-tt/2", "stage", "model:churn-tt#Archived") in g.triples()
        return g

    wait_until(settled, 30, "the lineage view to have the archive", ignoring=FED_LATER, every=0.1)
    then = modelog.lineage("model:churn-tt@champion", direction="up", as_of=t1)
    assert [n.label for n in then.upstream_of("model:churn-tt@champion")] == ["model:churn-tt/1"]
    upstream = {n.label for n in then.upstream_of("model:churn-tt/1")}
    assert upstream == {f"run:{flow.run_id}", "artifact:churn-model:v1"}
    assert then.node(f"dataset:{'ab' * 32}").kind == "dataset"

    env = {"MODELOG_URL": flow.server.addr, "MODELOG_TOKEN": flow.server.tokens["carol"]}
    out = CliRunner().invoke(
        cli_main, ["lineage", "model:churn-tt@champion", "--direction", "up", "--json"], env=env
    )
    assert out.exit_code == 0, out.output
    now = json.loads(out.output)
    labels = {n["id"]: n["label"] for n in now["nodes"]}
    assert {
        (labels[e["src"]], e["relation"]) for e in now["edges"] if labels[e["dst"]].endswith("@champion")
    } == {("model:churn-tt/2", "alias")}
    text = CliRunner().invoke(cli_main, ["lineage", "model:churn-tt/1", "--as-of", t1.isoformat()], env=env)
    assert "model:churn-tt/1 --stage--> model:churn-tt#Production" in text.output

    steps = [e.summary for e in modelog.timeline("model:churn-tt/1")]
    assert steps[0].startswith("alice created version 1") and any("bob approved" in s for s in steps)
    listed = CliRunner().invoke(cli_main, ["timeline", f"run:{flow.run_id}", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    services = {e["service"] for e in json.loads(listed.output)}
    assert services == {"tracking", "artifacts", "registry"}


def test_a_renamed_model_is_found_by_the_name_it_had_then(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    as_alice(flow.server, monkeypatch, tmp_path)
    register_model(flow.run_id, artifact=package(tmp_path, flow.run_id, "fraud"), name="fraud-tt")
    before_rename = record("fraud-tt").at
    with Connection(flow.server.addr, flow.server.tokens["admin"]) as conn:
        stub = registry_pb2_grpc.RegistryStub(conn.channel)
        stub.RenameModel(pb.RenameModelRequest(name="fraud-tt", new_name="fraud-tt2"))
    then = models.get("fraud-tt", as_of=before_rename)
    assert (
        isinstance(then, ModelAsOf) and then.name == "fraud-tt" and [v.version for v in then.versions] == [1]
    )
    with pytest.raises(errors.NotFound, match="renamed or released"):
        models.get("fraud-tt", as_of=datetime.now(UTC))
    with pytest.raises(errors.NotFound, match="first taken at"):
        models.get("fraud-tt2", as_of=before_rename)
    now = models.get("fraud-tt2", as_of=datetime.now(UTC))
    assert isinstance(now, ModelAsOf) and now.model_id == then.model_id

    def renamed() -> bool:  # the lineage view learns the new name from the bus
        g = modelog.lineage("model:fraud-tt2/1", direction="up")
        assert g.nodes[g.root].label == "model:fraud-tt2/1"
        return True

    wait_until(renamed, 30, "the lineage view to have the rename", ignoring=FED_LATER, every=0.1)
    old = modelog.lineage("model:fraud-tt/1", direction="up", as_of=before_rename)
    assert old.nodes[old.root].label == "model:fraud-tt/1"
    assert {n.label for n in old.upstream_of(old.root)} == {f"run:{flow.run_id}", "artifact:churn-model:v3"}
