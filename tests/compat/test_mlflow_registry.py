"""The stock `mlflow` client's model registry (3.17, from its own venv) against `modelog up`: registered
models, versions from runs, aliases, search with MLflow's filters, stages under our approval policy,
download URIs, MLflow's error codes, retried creates, and every change in the model's audit trail."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from tests.compat.conftest import Client
from tests.integration.gatewayfix import Platform, platform
from tests.procs import MLFLOW_PYTHON, MODELOG

__all__ = ["platform"]

PRELUDE = """
import json, mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
c = MlflowClient()

def code(fn):
    try:
        fn()
    except MlflowException as e:
        return e.error_code
    return None

def run_id():
    with mlflow.start_run() as run:
        mlflow.log_param("lr", "0.1")
        mlflow.log_metric("auc", 0.91)
    return run.info.run_id
"""


def mlflow(p: Platform, body: str, python: Path = MLFLOW_PYTHON, **env: str) -> dict[str, Any]:
    return p.mlflow(PRELUDE + textwrap.dedent(body), python=python, **env)


def cli_as(p: Platform, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`modelog ARGS` with another person's token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOG_")}
    env.update(MODELOG_URL=p.addr, MODELOG_TOKEN=token, MODELOG_HOME=str(p.home / "cli"))
    return subprocess.run([*MODELOG, *args], env=env, capture_output=True, text=True, timeout=60)


def history(p: Platform, model: str) -> list[dict[str, Any]]:
    return list(json.loads(p.cli("models", "history", model, "--json")))


def test_registered_models_created_searched_changed_and_deleted_as_mlflow_does(platform: Platform) -> None:
    out = mlflow(
        platform,
        """
        c.create_registered_model("reg-churn", tags={"team": "risk"}, description="first")
        c.create_registered_model("reg-fraud")
        c.create_registered_model("other-model")
        dup = code(lambda: c.create_registered_model("reg-churn"))
        got = c.get_registered_model("reg-churn")
        like = [m.name for m in c.search_registered_models(filter_string="name LIKE 'reg-%'")]
        fluent = [m.name for m in mlflow.search_registered_models(filter_string="name ILIKE 'REG-F%'")]
        exact = [m.name for m in c.search_registered_models(filter_string="name = 'reg-fraud'")]
        tagged = [m.name for m in c.search_registered_models(filter_string="tags.team = 'risk'")]
        first = c.search_registered_models(filter_string="name LIKE 'reg-%'", max_results=1)
        second = c.search_registered_models(
            filter_string="name LIKE 'reg-%'", max_results=1, page_token=first.token
        )
        bad_filter = code(lambda: c.search_registered_models(filter_string="name = 'x' AND nosuch = 'y'"))
        c.update_registered_model("reg-churn", description="second")
        c.set_registered_model_tag("reg-churn", "owner", "ana")
        c.delete_registered_model_tag("reg-churn", "team")
        c.delete_registered_model_tag("reg-churn", "never-set")
        c.rename_registered_model("reg-churn", "reg-churn-2")
        renamed = c.get_registered_model("reg-churn-2")
        old_name = code(lambda: c.get_registered_model("reg-churn"))
        missing = code(lambda: c.get_registered_model("no-such-model"))
        c.delete_registered_model("reg-fraud")
        deleted = code(lambda: c.get_registered_model("reg-fraud"))
        after = [m.name for m in c.search_registered_models(filter_string="name LIKE 'reg-%'")]
        again = c.create_registered_model("reg-fraud").name
        print(json.dumps({
            "dup": dup, "description": got.description, "tags": got.tags, "like": like, "fluent": fluent,
            "exact": exact, "tagged": tagged, "pages": [[m.name for m in first], [m.name for m in second]],
            "second_token": second.token, "bad_filter": bad_filter,
            "renamed": [renamed.name, renamed.description, renamed.tags], "old_name": old_name,
            "missing": missing, "deleted": deleted, "after": after, "again": again,
        }))
        """,
    )
    assert out["dup"] == "RESOURCE_ALREADY_EXISTS"
    assert out["description"] == "first" and out["tags"] == {"team": "risk"}
    assert out["like"] == ["reg-churn", "reg-fraud"]  # MLflow's order: by name
    assert out["fluent"] == ["reg-fraud"] and out["exact"] == ["reg-fraud"] and out["tagged"] == ["reg-churn"]
    assert out["pages"] == [["reg-churn"], ["reg-fraud"]] and not out["second_token"]
    assert out["bad_filter"] == "INVALID_PARAMETER_VALUE"
    assert out["renamed"] == ["reg-churn-2", "second", {"owner": "ana"}]
    assert out["old_name"] == out["missing"] == out["deleted"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["after"] == ["reg-churn-2"] and out["again"] == "reg-fraud"

    events = history(platform, "reg-churn-2")
    assert [e["type"] for e in events] == [
        "ModelRegistered",
        "ModelDescribed",
        "ModelTagsSet",
        "ModelTagsSet",
        "ModelRenamed",
    ]
    assert {e["actor"] for e in events} == {"admin"}
    # The deleted model is kept (renamed, so MLflow's name is free again), with its history.
    listed = json.loads(platform.cli("models", "list", "--all", "--json"))
    tombstones = [m for m in listed if m["name"].startswith("reg-fraud.deleted-")]
    assert len(tombstones) == 1 and tombstones[0]["deleted"]
    assert [e["type"] for e in history(platform, tombstones[0]["name"])][-2:] == [
        "ModelRenamed",
        "ModelDeleted",
    ]


def test_versions_from_a_run_with_tags_aliases_search_and_download_uri(platform: Platform) -> None:
    out = mlflow(
        platform,
        """
        rid = run_id()
        c.create_registered_model("reg-ver")
        v1 = c.create_model_version("reg-ver", f"runs:/{rid}/model", run_id=rid, tags={"k": "v"},
                                    description="d1", run_link="http://ci/1")
        v2 = c.create_model_version("reg-ver", f"runs:/{rid}/other", run_id=rid)
        got = c.get_model_version("reg-ver", "1")
        by_name = sorted(v.version for v in c.search_model_versions("name='reg-ver'"))
        by_run = sorted(v.version for v in mlflow.search_model_versions(filter_string=f"run_id = '{rid}'"))
        flt = "name = 'reg-ver' AND source_path LIKE '%/other'"
        by_source = [v.version for v in c.search_model_versions(flt)]
        c.update_model_version("reg-ver", "1", description="d2")
        c.set_model_version_tag("reg-ver", "1", "note", "ok")
        c.delete_model_version_tag("reg-ver", "1", "k")
        c.delete_model_version_tag("reg-ver", "1", "never-set")
        reserved = code(lambda: c.set_model_version_tag("reg-ver", "1", "modelog.mlflow.source", "x"))
        c.set_registered_model_alias("reg-ver", "champion", "1")
        by_alias = c.get_model_version_by_alias("reg-ver", "champion")
        aliases = c.get_registered_model("reg-ver").aliases
        aliased_delete = code(lambda: c.delete_model_version("reg-ver", "1"))
        c.delete_registered_model_alias("reg-ver", "champion")
        c.delete_registered_model_alias("reg-ver", "champion")
        missing_alias = code(lambda: c.get_model_version_by_alias("reg-ver", "champion"))
        uri = c.get_model_version_download_uri("reg-ver", "1")
        latest = [(v.version, v.current_stage) for v in c.get_latest_versions("reg-ver")]
        missing_model = code(lambda: c.get_model_version("no-such-model", "1"))
        missing_version = code(lambda: c.get_model_version("reg-ver", "99"))
        no_run = code(lambda: c.create_model_version("reg-ver", "s3://bucket/model"))
        c.delete_model_version("reg-ver", "2")
        deleted = code(lambda: c.get_model_version("reg-ver", "2"))
        v3 = c.create_model_version("reg-ver", f"runs:/{rid}/third", run_id=rid)
        final = c.get_model_version("reg-ver", "1")
        print(json.dumps({
            "rid": rid, "v1": [v1.version, v1.current_stage, v1.status, v1.source, v1.run_id, v1.run_link],
            "v1_tags": v1.tags, "v2": v2.version, "got": [got.description, got.tags, got.source],
            "by_name": by_name, "by_run": by_run, "by_source": by_source, "reserved": reserved,
            "by_alias": [by_alias.version, list(by_alias.aliases)], "aliases": aliases,
            "aliased_delete": aliased_delete, "missing_alias": missing_alias, "uri": uri, "latest": latest,
            "missing_model": missing_model, "missing_version": missing_version, "no_run": no_run,
            "deleted": deleted, "v3": v3.version,
            "final": [final.description, final.tags, list(final.aliases)],
        }))
        """,
    )
    rid = out["rid"]
    assert out["v1"] == ["1", "None", "READY", f"runs:/{rid}/model", rid, "http://ci/1"]
    assert out["v1_tags"] == {"k": "v"} and out["v2"] == "2"
    assert out["got"] == ["d1", {"k": "v"}, f"runs:/{rid}/model"]
    assert out["by_name"] == out["by_run"] == ["1", "2"] and out["by_source"] == ["2"]
    assert out["reserved"] == "INVALID_PARAMETER_VALUE"
    assert out["by_alias"] == ["1", ["champion"]] and out["aliases"] == {"champion": "1"}
    assert out["aliased_delete"] == "INVALID_STATE"  # an alias a deployment may follow is not dropped
    assert out["missing_alias"] == "INVALID_PARAMETER_VALUE"
    assert out["uri"] == f"mlflow-artifacts:/0/{rid}/artifacts/model"
    assert out["latest"] == [["2", "None"]]
    assert out["missing_model"] == out["missing_version"] == out["deleted"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["no_run"] == "INVALID_PARAMETER_VALUE"
    assert out["v3"] == "3"  # numbers are never reused
    assert out["final"] == ["d2", {"note": "ok"}, []]

    # Our registry recorded the run's lineage, and each change as an event of the model.
    lineage = json.loads(platform.cli("models", "lineage", "reg-ver/1", "--json"))
    assert lineage["run_id"] == rid and lineage["params"] == {"lr": "0.1"}
    types = [e["type"] for e in history(platform, "reg-ver")]
    for expected in ("ModelVersionCreated", "VersionAnnotated", "AliasSet", "AliasRemoved", "VersionDeleted"):
        assert expected in types


def test_staging_moves_at_once_and_production_waits_for_a_second_person(
    platform: Platform, client: Client
) -> None:
    name = "reg-stage" + client.suffix
    reviewer = platform.new_token("reg-reviewer" + client.suffix, "member")
    out = mlflow(
        platform,
        """
        rid = run_id()
        c.create_registered_model("reg-stage")
        for path in ("a", "b"):
            c.create_model_version("reg-stage", f"runs:/{rid}/{path}", run_id=rid)
        s1 = c.transition_model_version_stage("reg-stage", "1", "staging").current_stage
        again = c.transition_model_version_stage("reg-stage", "1", "Staging").current_stage
        s2 = c.transition_model_version_stage("reg-stage", "2", "Staging", archive_existing_versions=True)
        v1 = c.get_model_version("reg-stage", "1").current_stage
        errors = []
        for _ in range(2):  # the second call is what a retry of the first sends
            try:
                c.transition_model_version_stage("reg-stage", "2", "Production")
            except MlflowException as e:
                errors.append([e.error_code, e.message])
        bad = code(lambda: c.transition_model_version_stage("reg-stage", "2", "Live"))
        back = code(lambda: c.transition_model_version_stage("reg-stage", "1", "None"))
        still = c.get_model_version("reg-stage", "2").current_stage
        print(json.dumps({"s1": s1, "again": again, "s2": s2.current_stage, "v1": v1, "errors": errors,
                          "bad": bad, "back": back, "still": still}))
        """.replace("reg-stage", name),
        client.python,
    )
    assert out["s1"] == out["again"] == out["s2"] == "Staging"
    assert out["v1"] == "Archived"  # archive_existing_versions
    assert out["bad"] == out["back"] == "INVALID_PARAMETER_VALUE" and out["still"] == "Staging"
    (code1, message1), (code2, message2) = out["errors"]
    assert code1 == code2 == "INVALID_STATE"
    assert "1 approval(s) by a member other than 'admin'" in message1
    request_id = re.search(r"transition request (\w+) was opened", message1)
    assert request_id is not None and request_id.group(1) in message2  # the retry found the same request
    command = re.search(r"`(modelog models approve [^`]+)`", message1)
    assert command is not None

    # The requester may not approve it; the command the message gives works for another person.
    args = shlex.split(command.group(1))[1:]
    self_approval = cli_as(platform, platform.token, *args)
    assert self_approval.returncode != 0 and "PERMISSION_DENIED" in self_approval.stderr
    approved = cli_as(platform, reviewer, *args)
    assert approved.returncode == 0, approved.stderr

    seen = mlflow(
        platform,
        """
        v = c.get_model_version("reg-stage", "2")
        prod = [x.version for x in c.get_latest_versions("reg-stage", stages=["Production"])]
        print(json.dumps({"stage": v.current_stage, "prod": prod}))
        """.replace("reg-stage", name),
        client.python,
    )
    assert seen == {"stage": "Production", "prod": ["2"]}
    events = [(e["type"], e["actor"]) for e in history(platform, name)]
    assert ("TransitionRequested", "admin") in events and (
        "TransitionApproved",
        "reg-reviewer" + client.suffix,
    ) in events
    # v1 to Staging, v2 to Staging, v1 archived, v2 to Production; the repeated and retried calls
    # opened nothing.
    assert events.count(("TransitionRequested", "admin")) == 4


def test_a_retried_model_version_create_makes_one_version(platform: Platform) -> None:
    out = mlflow(
        platform,
        """
        import os, requests
        rid = run_id()
        url = os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/"
        auth = {"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]}
        named = {"name": "reg-retry"}
        model = requests.post(url + "registered-models/create", json=named, headers=auth)
        model_again = requests.post(url + "registered-models/create", json=named, headers=auth)
        body = {"name": "reg-retry", "source": f"runs:/{rid}/model", "run_id": rid}
        first = requests.post(url + "model-versions/create", json=body, headers=auth)
        retry = requests.post(url + "model-versions/create", json=body, headers=auth)
        count = len(c.search_model_versions("name = 'reg-retry'"))
        c.delete_model_version("reg-retry", "1")
        after_delete = requests.post(url + "model-versions/create", json=body, headers=auth)
        print(json.dumps({
            "model": model.status_code,
            "model_again": [model_again.status_code, model_again.json()["error_code"]],
            "first": first.json()["model_version"]["version"],
            "retry": retry.json()["model_version"]["version"],
            "count": count, "after_delete": after_delete.json()["model_version"]["version"],
            "count_after": [v.version for v in c.search_model_versions("name = 'reg-retry'")],
        }))
        """,
    )
    assert out["model"] == 200 and out["model_again"] == [400, "RESOURCE_ALREADY_EXISTS"]
    assert out["first"] == out["retry"] == "1" and out["count"] == 1
    assert out["after_delete"] == "2" and out["count_after"] == ["2"]  # deleted since: a new registration
    created = [e for e in history(platform, "reg-retry") if e["type"] == "ModelVersionCreated"]
    assert len(created) == 2
