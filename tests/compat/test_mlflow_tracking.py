"""The stock `mlflow` client (3.17, from its own venv) logging to `modelog up` unchanged: the fluent
API, MlflowClient, search and history, MLflow's error contract, retried POSTs, and the same events in
our log as from our own SDK."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.compat.conftest import Client
from tests.integration.gatewayfix import Platform, platform
from tests.waiting import wait_until

__all__ = ["platform"]


def post(
    p: Platform, path: str, body: dict[str, Any], *, token: str | None = None, **headers: str
) -> tuple[int, dict]:
    """A raw call, as a retrying client or a script with `requests` would make it."""
    req = urllib.request.Request(
        p.http + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token or p.token}",
            "Content-Type": "application/json",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def get(p: Platform, path: str, **headers: str) -> tuple[int, bytes]:
    req = urllib.request.Request(p.http + path, headers={"Authorization": f"Bearer {p.token}", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_unchanged_fluent_code_logs_a_run_that_mlflow_and_modelog_both_read(
    platform: Platform, client: Client
) -> None:
    out = platform.mlflow(
        """
        import json, math, mlflow
        from mlflow import MlflowClient
        with mlflow.start_run() as run:               # no experiment: MLflow's "0", Default
            mlflow.log_param("lr", 0.01)
            mlflow.log_params({"layers": 3, "opt": "adam"})
            for step in range(50):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metrics({"acc": 0.9, "nan": math.nan, "inf": math.inf}, step=50)
            mlflow.set_tags({"team": "nlp"})
        mlflow.set_experiment("compat-fluent")
        with mlflow.start_run(run_name="second") as second:
            mlflow.log_metric("loss", 0.5)
        c = MlflowClient()
        r = c.get_run(run.info.run_id)
        hist = c.get_metric_history(run.info.run_id, "loss")
        exp = mlflow.get_experiment_by_name("compat-fluent")
        print(json.dumps({
            "run": run.info.run_id, "exp": run.info.experiment_id, "status": r.info.status,
            "params": r.data.params, "metrics": {k: str(v) for k, v in r.data.metrics.items()},
            "tags": {k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.source")},
            "history": [(m.step, m.value) for m in hist], "second": second.info.run_id,
            "second_name": c.get_run(second.info.run_id).info.run_name, "exp_id": exp.experiment_id,
            "default": mlflow.get_experiment("0").name, "end": r.info.end_time is not None,
        }))
        """,
        python=client.python,
    )
    assert out["exp"] == "0" and out["default"] == "Default" and out["status"] == "FINISHED" and out["end"]
    assert out["params"] == {"lr": "0.01", "layers": "3", "opt": "adam"}
    assert out["metrics"] == {"loss": str(1 / 50), "acc": "0.9", "nan": "nan", "inf": "inf"}
    assert out["tags"]["team"] == "nlp" and out["tags"]["mlflow.runName"]
    assert out["history"] == [[s, 1.0 / (s + 1)] for s in range(50)]
    assert out["second_name"] == "second"

    import modelog

    modelog.connect(platform.addr, platform.token)
    ours = modelog.get_run(out["run"])  # the same run, through the gRPC SDK
    assert ours.params == out["params"] and ours.status == "FINISHED"
    assert ours.metric_summaries["loss"]["count"] == 50
    assert modelog.get_run(out["second"]).experiment_id == out["exp_id"]


def test_client_search_with_mlflow_filters_and_our_or_and_paging(platform: Platform, client: Client) -> None:
    out = platform.mlflow(
        """
        import json, mlflow
        from mlflow import MlflowClient
        c = MlflowClient()
        exp = c.create_experiment("compat-search" + SUFFIX)
        for i in range(30):
            r = c.create_run(exp, run_name=f"r{i}")
            c.log_param(r.info.run_id, "lr", str(0.001 * (i % 3 + 1)))
            c.log_metric(r.info.run_id, "acc", i / 30)
            c.set_terminated(r.info.run_id)
        top = c.search_runs([exp], "metrics.acc > 0.5 and params.lr = '0.002'", order_by=["metrics.acc DESC"])
        either = c.search_runs([exp], "metrics.acc < 0.1 OR metrics.acc > 0.9")
        page = c.search_runs([exp], "", max_results=7)
        second = c.search_runs([exp], "", max_results=7, page_token=page.token)
        df = mlflow.search_runs([exp], filter_string="params.lr = '0.003'")
        by_tag = c.search_runs([exp], "tags.`mlflow.runName` = 'r3'", order_by=["tags.mlflow.runName DESC"])
        print(json.dumps({
            "top": [r.data.metrics["acc"] for r in top], "either": len(either),
            "page": [r.info.run_id for r in page], "second": [r.info.run_id for r in second],
            "df": len(df), "token": bool(page.token), "by_tag": [r.info.run_name for r in by_tag],
        }))
        """.replace("SUFFIX", repr(client.suffix)),
        python=client.python,
    )
    assert out["top"] == sorted([i / 30 for i in range(16, 30) if i % 3 == 1], reverse=True)
    assert out["either"] == 5  # 0, 1, 2 and 28, 29
    assert out["token"] and len(out["page"]) == 7 and not set(out["page"]) & set(out["second"])
    assert out["df"] == 10
    assert out["by_tag"] == ["r3"]  # MLflow's run-name tag is the run's name here


def test_mlflow_errors_keep_mlflow_codes_and_statuses(platform: Platform) -> None:
    out = platform.mlflow(
        """
        import json, mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        c = MlflowClient()
        codes = {}
        def code(name, fn):
            try:
                fn()
                codes[name] = "OK"
            except MlflowException as exc:
                codes[name] = exc.error_code
        exp = c.create_experiment("compat-errors")
        code("duplicate experiment", lambda: c.create_experiment("compat-errors"))
        code("missing run", lambda: c.get_run("0" * 32))
        code("missing experiment", lambda: c.get_experiment("ffffffff"))
        r = c.create_run(exp)
        c.log_param(r.info.run_id, "lr", "0.1")
        code("same param again", lambda: c.log_param(r.info.run_id, "lr", "0.1"))
        code("changed param", lambda: c.log_param(r.info.run_id, "lr", "0.2"))
        code("bad filter", lambda: c.search_runs([exp], "metrics.acc >>> 1"))
        print(json.dumps({"codes": codes, "by_name": mlflow.get_experiment_by_name("no-such") is None}))
        """
    )
    assert out["codes"] == {
        "duplicate experiment": "RESOURCE_ALREADY_EXISTS",
        "missing run": "RESOURCE_DOES_NOT_EXIST",
        "missing experiment": "RESOURCE_DOES_NOT_EXIST",
        "same param again": "OK",
        "changed param": "INVALID_PARAMETER_VALUE",
        "bad filter": "INVALID_PARAMETER_VALUE",
    }
    assert out["by_name"] is True  # set_experiment relies on None for a missing name
    status, body = post(platform, "/api/2.0/mlflow/experiments/create", {"name": "compat-errors"})
    assert status == 400 and body["error_code"] == "RESOURCE_ALREADY_EXISTS"  # MLflow's 400, not 409


def test_a_retried_create_run_or_log_batch_writes_nothing_twice(platform: Platform) -> None:
    status, created = post(platform, "/api/2.0/mlflow/experiments/create", {"name": "compat-retry"})
    exp = created["experiment_id"]
    body = {"experiment_id": exp, "start_time": 1_700_000_000_000, "tags": [{"key": "k", "value": "v"}]}
    first = post(platform, "/api/2.0/mlflow/runs/create", body)[1]["run"]["info"]["run_id"]
    again = post(platform, "/api/2.0/mlflow/runs/create", body)[1]["run"]["info"]["run_id"]
    assert first == again  # the retry of a POST whose answer was lost: the same run
    batch = {
        "run_id": first,
        "metrics": [
            {"key": "m", "value": float(i), "timestamp": 1_700_000_000_000, "step": i} for i in range(1000)
        ],
        "params": [{"key": "p", "value": "1"}],
    }
    assert post(platform, "/api/2.0/mlflow/runs/log-batch", batch)[0] == 200
    before = platform.heads()
    assert post(platform, "/api/2.0/mlflow/runs/log-batch", batch)[0] == 200
    assert platform.heads()["tracking"] == before["tracking"]  # nothing appended by the retry
    status, hist = get(platform, f"/api/2.0/mlflow/metrics/get-history?run_id={first}&metric_key=m")
    assert status == 200 and len(json.loads(hist)["metrics"]) == 1000
    other = post(platform, "/api/2.0/mlflow/runs/create", {**body, "start_time": 1_700_000_000_001})
    assert other[1]["run"]["info"]["run_id"] != first  # a different request is a different run
    finish = {"run_id": first, "status": "FINISHED", "end_time": 1_700_000_001_000}
    assert post(platform, "/api/2.0/mlflow/runs/update", finish)[0] == 200
    assert post(platform, "/api/2.0/mlflow/runs/update", finish)[0] == 200  # retried: still fine


def test_tokens_roles_and_basic_auth_are_those_of_grpc(platform: Platform) -> None:
    viewer = platform.new_token("compat-viewer", "viewer")
    status, body = post(platform, "/api/2.0/mlflow/experiments/create", {"name": "viewer-made"}, token=viewer)
    assert status == 403 and body["error_code"] == "PERMISSION_DENIED"
    status, body = post(platform, "/api/2.0/mlflow/experiments/create", {"name": "x"}, token="not-a-token")
    assert status == 401 and body["error_code"] == "UNAUTHENTICATED"
    req = urllib.request.Request(platform.http + "/api/2.0/mlflow/experiments/get?experiment_id=0")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 401 and "MLFLOW_TRACKING_TOKEN" in json.loads(info.value.read())["message"]
    out = platform.mlflow(
        """
        import json, mlflow
        from mlflow.exceptions import MlflowException
        print(json.dumps({"name": mlflow.get_experiment("0").name}))
        """,
        token="",
        MLFLOW_TRACKING_USERNAME="anyone",
        MLFLOW_TRACKING_PASSWORD=viewer,
    )
    assert out == {"name": "Default"}  # basic auth, the token as password: a viewer may read


def test_dns_rebinding_and_oversized_requests_are_refused_before_any_route(platform: Platform) -> None:
    status, body = get(platform, "/api/2.0/mlflow/experiments/get?experiment_id=0", Host="evil.example:5000")
    assert status == 421 and b"MODELOG_HTTP_ALLOWED_HOSTS" in body
    assert get(platform, "/api/2.0/mlflow/experiments/get?experiment_id=0", Host="localhost:5000")[0] == 200
    status, _ = get(platform, "/api/2.0/mlflow/experiments/get?experiment_id=0", Origin="http://evil.example")
    assert status == 200  # no CORS headers unless configured: the browser refuses the page the answer
    req = urllib.request.Request(
        platform.http + "/api/2.0/mlflow/experiments/get?experiment_id=0",
        headers={"Authorization": f"Bearer {platform.token}", "Origin": "http://evil.example"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers.get("access-control-allow-origin") is None
    before = platform.heads()
    # A body over the limit is refused from its Content-Length, before a byte of it is read.
    conn = http.client.HTTPConnection(platform.http.removeprefix("http://"), timeout=10)
    conn.putrequest("POST", "/api/2.0/mlflow/experiments/create")
    conn.putheader("Authorization", f"Bearer {platform.token}")
    conn.putheader("Content-Length", str(33 * 1024 * 1024))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    conn.close()
    status, body = get(platform, "/api/2.0/mlflow/runs/get?run_id=x", **{"X-Big": "y" * 70_000})
    assert status == 431
    status, body = post(platform, "/api/2.0/mlflow/runs/log-batch", {"run_id": "r", "metrics": "nope"})
    assert status == 400
    assert platform.heads() == before


def _from(p: Platform, source: str, token: str) -> int:
    conn = http.client.HTTPConnection(p.http.removeprefix("http://"), timeout=10, source_address=(source, 0))
    conn.request(
        "GET", "/api/2.0/mlflow/experiments/get?experiment_id=0", headers={"Authorization": f"Bearer {token}"}
    )
    status = conn.getresponse().status
    conn.close()
    return status


def test_failed_authentications_are_throttled_per_http_client_not_for_everyone(platform: Platform) -> None:
    statuses = [_from(platform, "127.0.0.2", f"guess-{i}") for i in range(25)]
    assert statuses[0] == 401 and statuses[-1] == 429  # the guesser is slowed down ...
    assert _from(platform, "127.0.0.3", platform.token) == 200  # ... another client of the gateway is not
    assert _from(platform, "127.0.0.2", platform.token) == 429


def test_mlflow_dataset_inputs_become_lineage_and_events_carry_the_token_s_actor(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = platform.mlflow(
        """
        import json, mlflow, numpy as np
        ds = mlflow.data.from_numpy(np.arange(12.0).reshape(4, 3), source="s3://b/train.npy", name="train-np")
        mlflow.set_experiment("compat-lineage")
        with mlflow.start_run() as run:
            mlflow.log_input(ds, context="training")
        r = mlflow.get_run(run.info.run_id)
        inp = r.inputs.dataset_inputs[0]
        print(json.dumps({"run": run.info.run_id, "digest": ds.digest, "name": inp.dataset.name,
                          "context": {t.key: t.value for t in inp.tags}.get("mlflow.data.context")}))
        """
    )
    assert out["name"] == "train-np" and out["context"] == "training"
    from modelog import audit, errors, graph

    monkeypatch.setenv("MODELOG_URL", platform.addr)
    monkeypatch.setenv("MODELOG_TOKEN", platform.token)

    def datasets() -> list[Any]:  # the lineage view trails the logs by the bus's lag
        g = graph.lineage(f"run:{out['run']}", direction="up")
        return [n for n in g.upstream_of(f"run:{out['run']}") if n.kind == "dataset"]

    upstream = wait_until(
        datasets, 30, "the MLflow dataset input in the lineage graph", ignoring=(errors.NotFound,), every=0.3
    )
    assert upstream[0].attrs["digest"] == out["digest"] and upstream[0].attrs["name"] == "train-np"
    events = [
        e
        for e in audit.replay("start", services=["tracking"], streams=[f"run-{out['run']}"])
        if e.type == "DatasetInputLogged"
    ]
    assert len(events) == 1 and events[0].metadata["actor"] == "admin"


def test_a_number_where_mlflow_wants_a_string_is_refused_not_coerced(platform: Platform) -> None:
    body = {"run_id": 31, "key": "k", "value": "v"}
    status, body = post(platform, "/api/2.0/mlflow/runs/log-parameter", body)
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Invalid value 31 for parameter 'run_id'" in body["message"]
    status, body = post(platform, "/api/2.0/mlflow/experiments/create", {"name": 123})
    assert status == 400 and "parameter 'name'" in body["message"]


def test_search_experiments_takes_mlflow_s_grammar_and_order(platform: Platform) -> None:
    out = platform.mlflow(
        """
        import json, mlflow
        from mlflow import MlflowClient
        c = MlflowClient()
        for name, team in [("sx-alpha", "nlp"), ("sx-beta", "cv"), ("sx-gamma", "nlp")]:
            c.create_experiment(name, tags={"team": team})
        like = mlflow.search_experiments(filter_string="name LIKE 'sx-%'", order_by=["name DESC"])
        nlp = mlflow.search_experiments(filter_string="name LIKE 'sx-%' AND tags.team = 'nlp'")
        exact = mlflow.search_experiments(filter_string="name = 'sx-beta'")
        print(json.dumps({"like": [e.name for e in like], "nlp": sorted(e.name for e in nlp),
                          "exact": [e.name for e in exact]}))
        """
    )
    assert out == {
        "like": ["sx-gamma", "sx-beta", "sx-alpha"],
        "nlp": ["sx-alpha", "sx-gamma"],
        "exact": ["sx-beta"],
    }
