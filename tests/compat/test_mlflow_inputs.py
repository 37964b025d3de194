"""MLflow's run inputs and logged-model metrics through the stock client: input tags (the context and
any others) kept end to end, and metrics logged for a model shown on the model as well as the run."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.compat.conftest import Client
from tests.compat.test_mlflow_tracking import post
from tests.integration.gatewayfix import Platform, platform

__all__ = ["platform"]


def test_dataset_input_tags_come_back_as_logged(platform: Platform, client: Client) -> None:
    out = platform.mlflow(
        f"""
        import json, mlflow, numpy as np
        ds = mlflow.data.from_numpy(np.arange(6.0).reshape(2, 3), source="s3://b/x.npy", name="x")
        mlflow.set_experiment("compat-input-tags{client.suffix}")
        with mlflow.start_run() as run:
            mlflow.log_input(ds, context="eval", tags={{"split": "holdout", "fold": "3"}})
        r = mlflow.get_run(run.info.run_id)
        print(json.dumps({{"tags": [{{t.key: t.value for t in i.tags}} for i in r.inputs.dataset_inputs]}}))
        """,
        python=client.python,
    )
    assert out["tags"] == [{"mlflow.data.context": "eval", "split": "holdout", "fold": "3"}]


@pytest.mark.parametrize(
    ("tag", "why"),
    [({"key": "k" * 256, "value": "v"}, "limit is 255"), ({"key": "k", "value": "v" * 501}, "limit is 500")],
)
def test_an_input_tag_over_mlflow_s_limits_is_refused_and_writes_nothing(
    platform: Platform, tag: dict[str, str], why: str
) -> None:
    status, made = post(platform, "/api/2.0/mlflow/runs/create", {"experiment_id": "0"})
    assert status == 200
    run_id = made["run"]["info"]["run_id"]
    dataset = {"name": "d", "digest": "abc", "source_type": "local", "source": "/tmp/d"}
    status, body = post(
        platform,
        "/api/2.0/mlflow/runs/log-inputs",
        {"run_id": run_id, "datasets": [{"dataset": dataset, "tags": [tag]}]},
    )
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", body
    assert why in body["message"]
    got = platform.mlflow(
        f"""
        import json, mlflow
        print(json.dumps({{"inputs": len(mlflow.get_run("{run_id}").inputs.dataset_inputs)}}))
        """
    )
    assert got["inputs"] == 0


def test_metrics_logged_for_a_model_show_on_the_model_and_the_run(platform: Platform) -> None:
    out = platform.mlflow(
        """
        import json, mlflow, numpy as np
        mlflow.set_experiment("compat-model-metrics")
        ds = mlflow.data.from_numpy(np.arange(6.0).reshape(2, 3), source="s3://b/e.npy", name="eval-set")
        with mlflow.start_run() as run:
            model = mlflow.initialize_logged_model(name="clf")
            mlflow.log_metric("acc", 0.75, step=1, model_id=model.model_id)
            mlflow.log_metric("acc", 0.8, step=2, model_id=model.model_id, dataset=ds)
            mlflow.log_metric("plain", 1.0)
            mlflow.set_active_model(model_id=model.model_id)
            mlflow.log_metrics({"loss": 0.5, "f1": 0.6}, step=3)
        got = mlflow.get_logged_model(model.model_id)
        r = mlflow.get_run(run.info.run_id)
        print(json.dumps({
            "model": sorted(
                [m.key, m.value, m.step, m.run_id == run.info.run_id, m.model_id == model.model_id,
                 m.dataset_name, m.dataset_digest == (ds.digest if m.dataset_name else None)]
                for m in got.metrics
            ),
            "run": r.data.metrics,
            "model_inputs": [i.model_id == model.model_id for i in r.inputs.model_inputs],
        }))
        """
    )
    assert out["model"] == [
        ["acc", 0.75, 1, True, True, None, True],
        ["acc", 0.8, 2, True, True, "eval-set", True],
        ["f1", 0.6, 3, True, True, None, True],
        ["loss", 0.5, 3, True, True, None, True],
    ]
    assert out["run"] == {"acc": 0.8, "plain": 1.0, "loss": 0.5, "f1": 0.6}
    assert out["model_inputs"] == [True]


def test_a_metric_for_an_unknown_model_is_refused_and_writes_nothing(platform: Platform) -> None:
    status, made = post(platform, "/api/2.0/mlflow/runs/create", {"experiment_id": "0"})
    run_id = made["run"]["info"]["run_id"]
    point = {"key": "acc", "value": 0.5, "timestamp": 1, "step": 0, "model_id": "m-" + "0" * 32}
    status, body = post(platform, "/api/2.0/mlflow/runs/log-metric", {"run_id": run_id, **point})
    assert status == 404 and body["error_code"] == "RESOURCE_DOES_NOT_EXIST", body
    status, body = post(
        platform,
        "/api/2.0/mlflow/runs/log-batch",
        {"run_id": run_id, "metrics": [point], "params": [{"key": "p", "value": "1"}]},
    )
    assert status == 404 and body["error_code"] == "RESOURCE_DOES_NOT_EXIST", body
    got = platform.mlflow(
        f"""
        import json, mlflow
        r = mlflow.get_run("{run_id}")
        print(json.dumps({{"metrics": r.data.metrics, "params": r.data.params}}))
        """
    )
    assert got == {"metrics": {}, "params": {}}


def test_a_metric_key_under_modelog_s_reserved_prefix_is_refused(platform: Platform) -> None:
    status, made = post(platform, "/api/2.0/mlflow/runs/create", {"experiment_id": "0"})
    run_id = made["run"]["info"]["run_id"]
    point = {"key": "modelog.mlflow.model/x/-/acc", "value": 0.5, "timestamp": 1, "step": 0}
    status, body = post(platform, "/api/2.0/mlflow/runs/log-metric", {"run_id": run_id, **point})
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", body


def _run_with(platform: Platform) -> str:
    status, made = post(platform, "/api/2.0/mlflow/runs/create", {"experiment_id": "0"})
    assert status == 200
    return str(made["run"]["info"]["run_id"])


def _got(platform: Platform, run_id: str) -> dict:
    return platform.mlflow(
        f"""
        import json, mlflow
        r = mlflow.get_run("{run_id}")
        print(json.dumps({{"params": r.data.params, "tags": {{k: v for k, v in r.data.tags.items()
                           if not k.startswith("mlflow.")}}, "metrics": r.data.metrics,
                           "inputs": [i.dataset.name for i in r.inputs.dataset_inputs]}}))
        """
    )


def test_log_inputs_with_one_refused_dataset_writes_none_of_them(platform: Platform) -> None:
    run_id = _run_with(platform)
    good = {"dataset": {"name": "train", "digest": "abc", "source_type": "local", "source": "/d"}}
    bad = {"dataset": {"name": "eval", "digest": "", "source_type": "local", "source": "/e"}}
    status, body = post(
        platform, "/api/2.0/mlflow/runs/log-inputs", {"run_id": run_id, "datasets": [good, bad]}
    )
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE" and "digest" in body["message"]
    assert _got(platform, run_id)["inputs"] == []
    status, _ = post(platform, "/api/2.0/mlflow/runs/log-inputs", {"run_id": run_id, "datasets": [good]})
    assert status == 200 and _got(platform, run_id)["inputs"] == ["train"]


def test_log_batch_with_one_refused_metric_writes_nothing_of_the_request(platform: Platform) -> None:
    run_id = _run_with(platform)
    body = {
        "run_id": run_id,
        "params": [{"key": "lr", "value": "0.1"}],
        "tags": [{"key": "team", "value": "cv"}],
        "metrics": [
            {"key": "loss", "value": 0.5, "timestamp": 1, "step": 0},
            {"key": "k" * 300, "value": 1.0, "timestamp": 1, "step": 0},
        ],
    }
    status, got = post(platform, "/api/2.0/mlflow/runs/log-batch", body)
    assert status == 400 and got["error_code"] == "INVALID_PARAMETER_VALUE", got
    assert _got(platform, run_id) == {"params": {}, "tags": {}, "metrics": {}, "inputs": []}
    body["metrics"] = body["metrics"][:1]  # type: ignore[index]
    for _ in range(2):  # the stock client's retry of the same body is not written twice
        assert post(platform, "/api/2.0/mlflow/runs/log-batch", body)[0] == 200
    assert _got(platform, run_id) == {
        "params": {"lr": "0.1"},
        "tags": {"team": "cv"},
        "metrics": {"loss": 0.5},
        "inputs": [],
    }


def test_identical_unnamed_creates_in_flight_together_are_two_runs_and_a_retry_is_one(
    platform: Platform,
) -> None:
    body = {
        "experiment_id": "0",
        "start_time": 1_700_000_000_000,
        "tags": [{"key": "mlflow.user", "value": "u"}],
    }
    barrier = threading.Barrier(8)

    def create() -> str:
        barrier.wait()
        status, made = post(platform, "/api/2.0/mlflow/runs/create", body)
        assert status == 200, made
        return str(made["run"]["info"]["run_id"])

    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda _: create(), range(8)))
    status, retried = post(platform, "/api/2.0/mlflow/runs/create", body)
    assert status == 200 and retried["run"]["info"]["run_id"] in together
    assert len(set(together)) > 1, "identical creates in flight at once were merged into one run"
