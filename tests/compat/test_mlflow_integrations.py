"""What teams already run: scikit-learn and XGBoost autologging and Optuna's MLflow callback, stock
and unchanged, logging to Modelog."""

from __future__ import annotations

import modelog
from tests.integration.gatewayfix import Platform, platform

__all__ = ["platform"]


def test_sklearn_autolog_records_params_metrics_and_the_model(platform: Platform) -> None:
    out = platform.mlflow(
        """
        import json, mlflow, numpy as np
        from sklearn.linear_model import LogisticRegression
        mlflow.set_experiment("compat-sklearn")
        mlflow.sklearn.autolog()
        rng = np.random.default_rng(0)
        X = rng.normal(size=(200, 4)); y = (X[:, 0] + X[:, 1] > 0).astype(int)
        with mlflow.start_run() as run:
            LogisticRegression(C=0.5, max_iter=200).fit(X, y)
        c = mlflow.MlflowClient()
        r = c.get_run(run.info.run_id)
        models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
        loaded = mlflow.sklearn.load_model(f"models:/{models[0].model_id}")
        print(json.dumps({"run": run.info.run_id, "params": r.data.params, "metrics": sorted(r.data.metrics),
                          "predict": loaded.predict(X[:5]).tolist(), "models": len(models)}))
        """,
        timeout=300,
    )
    assert out["params"]["C"] == "0.5" and out["params"]["max_iter"] == "200"
    assert "training_accuracy_score" in out["metrics"] and out["models"] == 1
    assert len(out["predict"]) == 5
    modelog.connect(platform.addr, platform.token)
    assert modelog.get_run(out["run"]).params["C"] == "0.5"


def test_xgboost_autolog_logs_every_boosting_round(platform: Platform) -> None:
    out = platform.mlflow(
        """
        import json, mlflow, numpy as np, xgboost as xgb
        mlflow.set_experiment("compat-xgboost")
        mlflow.xgboost.autolog(log_models=True)
        rng = np.random.default_rng(1)
        X = rng.normal(size=(300, 5)); y = X[:, 0] * 2 + rng.normal(size=300) * 0.1
        dtrain = xgb.DMatrix(X[:200], label=y[:200]); dval = xgb.DMatrix(X[200:], label=y[200:])
        with mlflow.start_run() as run:
            xgb.train({"max_depth": 3, "eta": 0.3}, dtrain, num_boost_round=20, evals=[(dval, "val")])
        hist = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val-rmse")
        print(json.dumps({"run": run.info.run_id, "steps": [m.step for m in hist],
                          "params": mlflow.get_run(run.info.run_id).data.params}))
        """,
        timeout=300,
    )
    assert out["steps"] == list(range(20)) and out["params"]["max_depth"] == "3"
    modelog.connect(platform.addr, platform.token)
    assert modelog.get_run(out["run"]).metric_summaries["val-rmse"]["count"] == 20


def test_optuna_mlflow_callback_logs_one_run_per_trial(platform: Platform) -> None:
    out = platform.mlflow(
        """
        import json, mlflow, optuna
        from optuna.integration import MLflowCallback
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        cb = MLflowCallback(metric_name="score", create_experiment=True, mlflow_kwargs={"nested": False})
        study = optuna.create_study(study_name="compat-optuna", direction="minimize")
        study.optimize(lambda t: (t.suggest_float("x", -3, 3) - 1) ** 2, n_trials=8, callbacks=[cb])
        runs = mlflow.search_runs(experiment_names=["compat-optuna"])
        print(json.dumps({"runs": len(runs), "best": study.best_value,
                          "scores": sorted(runs["metrics.score"].tolist()),
                          "x": runs["params.x"].notna().all().item()}))
        """,
        timeout=300,
    )
    assert out["runs"] == 8 and out["x"] is True
    assert out["scores"][0] == out["best"]
