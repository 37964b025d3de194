"""The registry from Python and from the `modelog models` commands, against `modelog up` (a real server
process, real PostgreSQL, real broker): the full path with three people, download, lineage, history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelog
import modelog.artifacts as art
from modelog import errors
from modelog._client import Connection
from modelog._gen.identity.v1 import identity_pb2
from modelog.cli.models import models as models_cli
from modelog.registry import Registry, models, register_model
from modelog_platform.embedded import free_port
from tests.procs import Up, env_for


class Server:
    def __init__(self, addr: str, home: Path) -> None:
        self.addr, self.home = addr, home
        self.tokens = {"admin": (home / "admin-token").read_text().strip()}

    def user(self, name: str, role: str = "member") -> str:
        with Connection(self.addr, self.tokens["admin"]) as conn:
            resp = conn.identity.CreateToken(identity_pb2.CreateTokenRequest(name=name, roles=[role]))
        self.tokens[name] = resp.secret
        return str(resp.secret)

    def registry(self, user: str) -> Registry:
        return Registry(Connection(self.addr, self.tokens[user]))

    def cli(self, user: str, *args: str) -> str:
        env = {"MODELOG_URL": self.addr, "MODELOG_TOKEN": self.tokens[user]}
        result = CliRunner().invoke(models_cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("registry-home")
    addr = f"127.0.0.1:{free_port()}"
    up = Up(env_for(home, addr))
    up.wait_for("modelog ready on", 60)
    s = Server(addr, home)
    for name in ("alice", "bob", "carol"):
        s.user(name)
    yield s
    up.stop()


@pytest.fixture
def alice(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[modelog.Client]:
    monkeypatch.setenv("MODELOG_URL", server.addr)
    monkeypatch.setenv("MODELOG_TOKEN", server.tokens["alice"])
    monkeypatch.setenv("MODELOG_HOME", str(tmp_path / "client-home"))
    monkeypatch.delenv("MODELOG_MODE", raising=False)
    client = modelog.connect()
    yield client
    client.close()


def train_and_package(tmp_path: Path, name: str = "churn-model") -> tuple[str, art.ArtifactVersion, Path]:
    with modelog.start_run(experiment="churn", params={"lr": 0.05, "trees": 200}) as run:
        for step in range(5):
            run.log_metrics({"auc": 0.7 + step / 100, "loss": 1 / (step + 1)}, step=step)
        run.log_input(name="customers-2026-10", digest="sha256:" + "ef" * 32, context="training")
    package = tmp_path / "package"
    package.mkdir()
    (package / "model.pkl").write_bytes(b"\x80\x04weights" * 1000)
    (package / "MLmodel").write_text("flavors: {sklearn: {}}\n")
    version = art.log_artifacts(package, name=name, kind="model", run_id=run.id, progress=_quiet())
    return run.id, version, package


class _quiet:
    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


def test_a_model_is_registered_approved_by_two_others_aliased_and_downloaded(
    server: Server, alice: modelog.Client, tmp_path: Path
) -> None:
    run_id, package_version, package = train_and_package(tmp_path)
    v = register_model(run_id, artifact=f"{package_version.name}:v{package_version.version}", name="churn")
    assert (v.ref, v.stage, v.created_by, v.run_id) == ("churn/1", "None", "alice", run_id)
    server.registry("admin").set_policy("churn", "Production", approvals=2, from_stages=["Staging"])

    assert v.request_transition("Staging").status == "APPROVED" and v.stage == "Staging"
    request = v.request_transition("Production", comment="AUC 0.74 vs 0.71")
    assert (request.status, request.approvals_required, request.requested_by) == ("OPEN", 2, "alice")
    with pytest.raises(errors.PermissionDenied, match="'alice' opened request"):
        v.approve()
    assert server.registry("bob").get("churn/1").approve(comment="looked at the eval").stage == "Staging"
    assert server.registry("carol").get("churn/1").approve().stage == "Production"

    server.registry("bob").get("churn/1").set_alias("champion")
    champion = models.get("churn@champion")
    assert (champion.version, champion.stage, champion.aliases) == (1, "Production", ["champion"])
    assert models.get("churn").version == 1 and models.model("churn").production_versions == [1]

    target = champion.download(tmp_path / "serving")
    assert (target / "model.pkl").read_bytes() == (package / "model.pkl").read_bytes()
    assert (target / "MLmodel").read_text() == (package / "MLmodel").read_text()

    lineage = champion.lineage()
    assert lineage.run_id == run_id and lineage.params == {"lr": "0.05", "trees": "200"}
    assert lineage.metrics["auc"] == pytest.approx(0.74) and lineage.metric_summaries["loss"]["min"] == 0.2
    assert lineage.datasets[0]["name"] == "customers-2026-10"
    assert lineage.manifest_digest == package_version.manifest_digest == champion.manifest_digest

    steps = [(e.type, e.actor) for e in models.history("churn")]
    assert steps == [
        ("ModelRegistered", "alice"),
        ("ModelVersionCreated", "alice"),
        ("PolicySet", "admin"),
        ("TransitionRequested", "alice"),
        ("VersionStageChanged", "alice"),
        ("TransitionRequested", "alice"),
        ("TransitionApproved", "bob"),
        ("TransitionApproved", "carol"),
        ("VersionStageChanged", "carol"),
        ("AliasSet", "bob"),
    ]


def test_the_models_commands_list_show_alias_request_approve_and_explain(
    server: Server, alice: modelog.Client, tmp_path: Path
) -> None:
    run_id, package_version, _ = train_and_package(tmp_path, name="fraud-model")
    out = server.cli(
        "alice", "register", "fraud", "--artifact", "fraud-model", "--framework", "xgboost", "--json"
    )
    assert json.loads(out)["run_id"] == run_id  # the artifact's run, found by the registry
    server.cli(
        "alice", "register", "fraud", "--artifact", f"fraud-model:v{package_version.version}", "--run", run_id
    )

    assert "fraud@challenger -> 2" in server.cli("alice", "alias", "fraud", "2", "challenger")
    assert "now in Staging" in server.cli("alice", "request", "fraud", "2", "Staging", "-m", "try it")
    assert "OPEN" in server.cli("alice", "request", "fraud", "2", "Production")
    assert "is in Production" in server.cli("bob", "approve", "fraud", "2", "-m", "ok")
    server.cli("alice", "request", "fraud", "1", "Staging")
    server.cli("alice", "request", "fraud", "1", "Production")
    assert "REJECTED" in server.cli("bob", "reject", "fraud", "1", "-m", "worse recall")

    listed = json.loads(server.cli("alice", "list", "--json"))
    fraud = next(m for m in listed if m["name"] == "fraud")
    assert fraud["production_versions"] == [2] and fraud["aliases"] == {"challenger": 2}
    filtered = json.loads(
        server.cli("alice", "list", "--filter", "name = 'fraud' OR name = 'nope'", "--json")
    )
    assert [m["name"] for m in filtered] == ["fraud"]
    assert [m.name for m in alice.models.list(filter="NOT name LIKE 'fr%' AND name = 'fraud'")] == []
    shown = server.cli("alice", "show", "fraud")
    assert "challenger -> 2" in shown and "Production" in shown
    one = json.loads(server.cli("alice", "show", "fraud@challenger", "--json"))
    assert (one["version"], one["stage"], one["aliases"]) == (2, "Production", ["challenger"])
    assert json.loads(server.cli("alice", "show", "fraud/1", "--json"))["framework"] == "xgboost"
    lineage = json.loads(server.cli("alice", "lineage", "fraud/2", "--json"))
    assert lineage["run_id"] == run_id and lineage["manifest_digest"] == package_version.manifest_digest
    history = server.cli("alice", "history", "fraud")
    assert "alice requested Production for version 2" in history and "bob approved request" in history
    assert "version 2 moved from Staging to Production, on bob's decision" in history

    result = CliRunner().invoke(
        models_cli,
        ["approve", "fraud", "1"],
        env={"MODELOG_URL": server.addr, "MODELOG_TOKEN": server.tokens["bob"]},
    )
    assert result.exit_code == 1
    assert "FAILED_PRECONDITION" in result.output and "no open transition request" in result.output
