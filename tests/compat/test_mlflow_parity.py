"""Where a run of MLflow 3.17's own REST tests found us answering otherwise than MLflow: model-version
sources outside their run, "." in artifact paths, `!=` on tags, the registered model's update time,
max_results caps, MLflow's server paths, and MLflow's words for missing and invalid parameters."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from tests.integration.gatewayfix import Platform, platform

__all__ = ["platform"]

PRELUDE = """
import json, os, requests, mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
c = MlflowClient()
URL = os.environ["MLFLOW_TRACKING_URI"]
AUTH = {"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]}

def post(path, body):
    r = requests.post(URL + "/api/2.0/mlflow/" + path, json=body, headers=AUTH)
    return [r.status_code, r.json().get("error_code"), r.json().get("message", "")]

def get(path, params):
    r = requests.get(URL + "/api/2.0/mlflow/" + path, params=params, headers=AUTH)
    return [r.status_code, r.json().get("error_code"), r.json().get("message", "")]

def run_id():
    with mlflow.start_run() as run:
        mlflow.log_text("hello", "notes/hello.txt")
    return run.info.run_id
"""


def mlflow(p: Platform, body: str) -> dict[str, Any]:
    return p.mlflow(PRELUDE + textwrap.dedent(body))


BAD_SOURCES = [
    "file:///etc/passwd",
    "/etc",
    "mlflow-artifacts://host:9000/models/../../../",
    "http://host/../../../",
    "mlflow-artifacts:/0/{rid}/artifacts/..%2f..%2f..%2f",
    "mlflow-artifacts:/0/{rid}/artifacts/%252e%252e/%252e%252e/x",
    "mlflow-artifacts:/0/{rid}/artifacts/..\\..\\x",
    "runs:/{rid}/../../../etc",
]


def test_a_model_version_source_outside_its_run_is_refused_and_nothing_is_written(platform: Platform) -> None:
    made = mlflow(platform, 'c.create_registered_model("src-model"); print(json.dumps({"rid": run_id()}))')
    rid = made["rid"]
    before = platform.heads()
    out = mlflow(
        platform,
        f"""
        sources = {json.dumps([s.replace("{rid}", rid) for s in BAD_SOURCES])}
        print(json.dumps({{"refused": [
            post("model-versions/create", {{"name": "src-model", "source": s, "run_id": "{rid}"}})
            for s in sources
        ]}}))
        """,
    )
    for (status, code, message), source in zip(out["refused"], BAD_SOURCES, strict=True):
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE"), source
        assert message.startswith("Invalid model version source"), message
    assert platform.heads() == before  # not a version, not an artifact reference
    out = mlflow(
        platform,
        f"""
        v1 = c.create_model_version("src-model", "runs:/{rid}/notes", run_id="{rid}")
        v2 = c.create_model_version("src-model", "mlflow-artifacts:/0/{rid}/artifacts/notes", run_id="{rid}")
        uris = [c.get_model_version_download_uri("src-model", v.version) for v in (v1, v2)]
        print(json.dumps({{"uris": uris}}))
        """,
    )
    assert out["uris"] == [f"mlflow-artifacts:/0/{rid}/artifacts/notes"] * 2


def test_a_dot_in_an_artifact_path_means_where_it_stands(platform: Platform) -> None:
    out = mlflow(
        platform,
        """
        import tempfile
        rid = run_id()
        exp = c.get_run(rid).info.experiment_id
        listed = {p: [f.path for f in c.list_artifacts(rid, p)] for p in (".", "./notes", "notes/.")}
        got = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path=".", dst_path=tempfile.mkdtemp())
        raw = requests.get(URL + "/api/2.0/mlflow/artifacts/list", params={"run_id": rid, "path": "."},
                           headers=AUTH)
        proxied = requests.get(URL + "/api/2.0/mlflow-artifacts/artifacts",
                               params={"path": f"{exp}/{rid}/artifacts/."}, headers=AUTH)
        up = requests.get(URL + "/api/2.0/mlflow/artifacts/list", params={"run_id": rid, "path": "./.."},
                          headers=AUTH)
        print(json.dumps({
            "listed": listed, "downloaded": open(os.path.join(got, "notes", "hello.txt")).read(),
            "raw": [raw.status_code, [f["path"] for f in raw.json().get("files", [])]],
            "proxied": [proxied.status_code, [f["path"] for f in proxied.json().get("files", [])]],
            "up": [up.status_code, up.json().get("error_code")],
        }))
        """,
    )
    # The client joins the path it asked for to each name, as against MLflow's server.
    assert out["listed"] == {
        ".": ["./notes"],
        "./notes": ["./notes/hello.txt"],
        "notes/.": ["notes/./hello.txt"],
    }
    assert out["downloaded"] == "hello"
    assert out["raw"] == [200, ["./notes"]] and out["proxied"] == [200, ["notes"]]
    assert out["up"] == [400, "INVALID_PARAMETER_VALUE"]


def test_not_equal_on_a_tag_finds_only_what_has_the_tag_with_another_value(platform: Platform) -> None:
    out = mlflow(
        platform,
        """
        c.create_experiment("ne-t1", tags={"k": "v"}); c.create_experiment("ne-t2", tags={"k": "w"})
        c.create_experiment("ne-t3")
        for name, tags in (("ne-m1", {"k": "v"}), ("ne-m2", {"k": "w"}), ("ne-m3", {})):
            c.create_registered_model(name, tags=tags)
        ne = "tag.k != 'v'"
        rid = run_id()
        for name, tags in (("ne-m1", {"k": "v"}), ("ne-m2", {"k": "w"}), ("ne-m3", {})):
            c.create_model_version(name, f"runs:/{rid}/notes", run_id=rid, tags=tags)
        print(json.dumps({
            "experiments": [e.name for e in c.search_experiments(filter_string=f"name LIKE 'ne-%' AND {ne}")],
            "models": [m.name for m in c.search_registered_models("name LIKE 'ne-%' AND tags.k != 'v'")],
            "versions": [v.name for v in c.search_model_versions("name LIKE 'ne-%' AND tags.k != 'v'")],
            "all_models": sorted(m.name for m in c.search_registered_models("name LIKE 'ne-%'")),
        }))
        """,
    )
    assert out["experiments"] == ["ne-t2"] and out["models"] == ["ne-m2"] and out["versions"] == ["ne-m2"]
    assert out["all_models"] == [
        "ne-m1",
        "ne-m2",
        "ne-m3",
    ]  # the client's prompt clause keeps untagged models


def test_a_stage_change_or_a_version_deletion_updates_the_registered_model(platform: Platform) -> None:
    out = mlflow(
        platform,
        """
        import time
        rid = run_id()
        c.create_registered_model("stamp-m")
        c.create_model_version("stamp-m", f"runs:/{rid}/notes", run_id=rid)
        c.create_model_version("stamp-m", f"runs:/{rid}/other", run_id=rid)
        t0 = c.get_registered_model("stamp-m").last_updated_timestamp
        time.sleep(0.01)
        c.transition_model_version_stage("stamp-m", "1", "Staging")
        t1 = c.get_registered_model("stamp-m").last_updated_timestamp
        time.sleep(0.01)
        c.delete_model_version("stamp-m", "2")
        t2 = c.get_registered_model("stamp-m").last_updated_timestamp
        print(json.dumps({"times": [t0, t1, t2]}))
        """,
    )
    t0, t1, t2 = out["times"]
    assert t0 < t1 < t2


def test_max_results_past_mlflow_s_caps_is_refused_in_mlflow_s_words(platform: Platform) -> None:
    out = mlflow(
        platform,
        """
        print(json.dumps({
            "runs": post("runs/search", {"experiment_ids": ["0"], "max_results": 123456789}),
            "runs_at_cap": post("runs/search", {"experiment_ids": ["0"], "max_results": 50000})[0],
            "experiments": post("experiments/search", {"max_results": 50001}),
            "models": get("registered-models/search", {"max_results": 1001}),
            "versions": get("model-versions/search", {"max_results": 200001}),
        }))
        """,
    )
    assert out["runs"][:2] == [400, "INVALID_PARAMETER_VALUE"]
    assert "Invalid value 123456789 for parameter 'max_results' supplied" in out["runs"][2]
    assert out["runs_at_cap"] == 200
    for what in ("experiments", "models", "versions"):
        assert out[what][:2] == [400, "INVALID_PARAMETER_VALUE"], (what, out[what])
        assert "for parameter 'max_results' supplied" in out[what][2]


def test_mlflow_s_server_paths_are_not_the_ui_page(platform: Platform) -> None:
    out = mlflow(
        platform,
        """
        v = requests.get(URL + "/version")
        gone = [requests.get(URL + p, params={"path": "x", "run_uuid": "r"}, headers=AUTH)
                for p in ("/get-artifact", "/model-versions/get-artifact")]
        print(json.dumps({
            "version": [v.status_code, v.headers["content-type"], v.text, mlflow.__version__],
            "gone": [[g.status_code, g.json()["error_code"]] for g in gone],
        }))
        """,
    )
    status, kind, text, client = out["version"]
    assert status == 200 and kind.startswith("text/plain") and text == client
    assert out["gone"] == [[404, "ENDPOINT_NOT_FOUND"]] * 2


def test_bad_parameters_are_refused_in_mlflow_s_words(platform: Platform) -> None:
    out = mlflow(
        platform,
        """
        rid = run_id()
        c.delete_run(rid)
        run = c.create_run("0").info.run_id
        print(json.dumps({
            "location": post("experiments/create", {"name": "bad-loc", "artifact_location": 9.0}),
            "no_stamp": post("runs/log-batch", {"run_id": run, "metrics": [{"key": "m", "value": 1.0}]}),
            "no_key": post("runs/set-tag", {"run_id": run, "value": "v"}),
            "bad_step": post("runs/log-metric", {"run_id": run, "key": "m", "value": 1, "timestamp": 1,
                                                 "step": "foo"}),
            "no_run": post("runs/log-metric", {"key": "m", "value": 1, "timestamp": 1}),
            "deleted": post("runs/set-tag", {"run_id": rid, "key": "k", "value": "v"}),
            "written": c.get_run(run).data.metrics,
        }))
        """,
    )
    assert out["location"][:2] == [400, "INVALID_PARAMETER_VALUE"]
    assert "Invalid value 9.0 for parameter 'artifact_location' supplied" in out["location"][2]
    assert out["no_stamp"] == [
        400,
        "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'metrics[0].timestamp'.",
    ]
    assert out["written"] == {}
    assert out["no_key"] == [400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'key'."]
    assert out["bad_step"] == [
        400,
        "INVALID_PARAMETER_VALUE",
        "Invalid value \"foo\" for parameter 'step' supplied.",
    ]
    assert out["no_run"] == [400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'."]
    assert out["deleted"][:2] == [400, "INVALID_PARAMETER_VALUE"]
    assert "must be in the 'active' state" in out["deleted"][2]


def test_a_missing_run_or_registered_model_is_named_in_mlflow_s_words(platform: Platform) -> None:
    out = mlflow(
        platform,
        """
        print(json.dumps({
            "run": get("runs/get", {"run_id": "f" * 32}),
            "tag": post("runs/delete-tag", {"run_id": "fake_run_id", "key": "k"}),
            "model": get("registered-models/get", {"name": "nope"}),
        }))
        """,
    )
    assert out["run"] == [404, "RESOURCE_DOES_NOT_EXIST", f"Run with id={'f' * 32} not found"]
    assert out["tag"] == [404, "RESOURCE_DOES_NOT_EXIST", "Run with id=fake_run_id not found"]
    assert out["model"] == [404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=nope not found"]
