"""The SDK's failures against `modelog up` (issue 23): a finished run refuses data at once, a refusal
of queued metrics surfaces at flush instead of hanging it, a missing version is a one-line NotFound,
and an address where nothing listens is a quick Unavailable that says what to do."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

import modelog
import modelog._client
from modelog import artifacts, audit, errors
from modelog._gen.tracking.v1 import tracking_pb2
from modelog_platform.embedded import free_port
from tests.integration.test_sdk import client, server

__all__ = ["client", "server"]


def test_a_run_this_process_finished_refuses_metrics_at_once_and_flush_returns(
    client: modelog.Client,
) -> None:
    with modelog.start_run(experiment="closed-metrics") as run:
        run.log_metrics({"loss": 1.0}, step=0)
    with pytest.raises(errors.FailedPrecondition, match="FINISHED") as info:
        run.log_metrics({"loss": 0.5}, step=1)
    assert run.id in info.value.message and "\n" not in str(info.value)
    assert run.flush(timeout=10) is True  # nothing is left to send: it returns, it does not wait
    with pytest.raises(RuntimeError), modelog.start_run(experiment="closed-metrics") as failed:
        raise RuntimeError("diverged")
    with pytest.raises(errors.FailedPrecondition, match="FAILED"):
        failed.log_metric("loss", 0.1)
    with pytest.raises(errors.FailedPrecondition, match="FAILED"):
        failed.log_input(name="train", digest="sha256:" + "ab" * 32)
    assert modelog.get_run(run.id).metric_summaries["loss"]["count"] == 1


def test_a_run_finished_by_another_client_makes_flush_raise_the_refusal(client: modelog.Client) -> None:
    run = modelog.start_run(experiment="finished-elsewhere")
    other = modelog.Client()  # another process, say, that finishes the run first
    other.transport.call(
        "FinishRun",
        tracking_pb2.FinishRunRequest(
            run_id=run.id, status=tracking_pb2.RUN_STATUS_FINISHED, end_time_ms=time.time_ns() // 1_000_000
        ),
    )
    other.close()
    run.log_metrics({"loss": 1.0}, step=0)  # queued: only the server knows the run is finished
    with pytest.raises(errors.FailedPrecondition, match="FINISHED") as info:
        run.flush(timeout=30)  # raises the refusal, rather than returning False at the deadline
    assert run.id in info.value.message and "\n" not in str(info.value)
    with pytest.raises(errors.FailedPrecondition, match="FINISHED"):
        run.log_metrics({"loss": 0.5}, step=1)  # the sender stopped: later calls raise
    with pytest.raises(errors.FailedPrecondition, match="FINISHED"):
        run.finish()
    assert modelog.get_run(run.id).metric_summaries == {}


def test_a_missing_artifact_version_is_a_one_line_not_found(client: modelog.Client, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a,b\n1,2\n")
    artifacts.log_artifacts(tmp_path / "data", name="churn-data", kind="dataset")
    with pytest.raises(errors.NotFound) as info:
        artifacts.get("churn-data:v9")
    assert "churn-data" in str(info.value) and "\n" not in str(info.value)
    assert not isinstance(info.value, grpc.RpcError)
    with pytest.raises(errors.NotFound):
        artifacts.open("churn-data:v3", "train.csv")
    with pytest.raises(errors.InvalidArgument) as bad:
        artifacts.get("churn-data:v0")  # checked on this side, by the rule the server applies
    assert "\n" not in str(bad.value)


def test_an_address_where_nothing_listens_is_a_quick_unavailable_with_the_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELOG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MODELOG_MODE", raising=False)
    addr = f"127.0.0.1:{free_port()}"
    nowhere = modelog.Client(url=addr, token="t")
    calls = {
        "start_run": lambda: nowhere.start_run("nowhere"),
        "artifacts.get": lambda: artifacts.get("x", conn=nowhere._online().conn),
        "audit.subscribe": lambda: next(audit.subscribe(connection=nowhere._online().conn)),
    }
    slept: list[float] = []  # what the SDK waited between its tries, by its own count (not a stopwatch)

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(modelog._client, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    for name, call in calls.items():
        slept.clear()
        with pytest.raises(errors.Unavailable) as info:
            call()
        # It gives up within its connect timeout, not after the old ~8 s of retries.
        assert sum(slept) <= modelog._client.CONNECT_TIMEOUT, (name, slept)
        message = str(info.value)
        assert addr in message and "\n" not in message, name
        assert "is `modelog up` running? set MODELOG_URL to reach another server" in message, name
    nowhere.close()
