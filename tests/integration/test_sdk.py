"""The Python SDK end to end against `modelog up` (a real server process, real PostgreSQL, real broker)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import modelog
from modelog import errors
from modelog._client import remember
from modelog_platform.embedded import free_port
from tests.procs import Up, env_for
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("sdk-home")
    addr = f"127.0.0.1:{free_port()}"
    up = Up(env_for(home, addr))
    up.wait_for("modelog ready on", 60)
    yield addr, home
    up.stop()


@pytest.fixture
def client(
    server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[modelog.Client]:
    addr, home = server
    monkeypatch.setenv("MODELOG_URL", addr)
    monkeypatch.setenv("MODELOG_TOKEN", (home / "admin-token").read_text().strip())
    monkeypatch.setenv("MODELOG_HOME", str(tmp_path / "client-home"))
    monkeypatch.delenv("MODELOG_MODE", raising=False)
    c = modelog.connect()
    yield c
    c.close()
    remember(None, None)  # later tests' connections must not find this module's (stopped) server


def train(experiment: str, *, steps: int = 300, fail: bool = False, **run_kwargs: Any) -> str:
    with modelog.start_run(experiment=experiment, params={"lr": 0.01, "layers": 3}, **run_kwargs) as run:
        for step in range(steps):
            run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / steps}, step=step)
        run.log_metrics({"weird": math.nan}, step=0)
        run.log_metrics({"weird": math.inf}, step=1)
        run.set_tags({"team": "nlp"})
        run.log_input(name="train", digest="sha256:" + "ab" * 32, context="training")
        if fail:
            raise RuntimeError("diverged")
    return run.id


def test_a_run_logs_and_finishes_and_is_searchable(client: modelog.Client) -> None:
    run_id = train("churn")
    run = modelog.get_run(run_id)
    assert run.status == "FINISHED" and run.params == {"lr": "0.01", "layers": "3"}
    assert run.metric_summaries["loss"]["count"] == 300 and run.metrics["loss"] == pytest.approx(1 / 300)
    assert run.tags["team"] == "nlp" and run.datasets[0]["context"] == "training"
    assert math.isinf(run.metrics["weird"])
    found = modelog.search_runs(
        "churn", filter="metrics.acc > 0.9 and params.lr = '0.01'", order_by=["metrics.acc DESC"]
    )
    assert run_id in [r.id for r in found]
    history = modelog.metric_history(run_id, "loss")
    assert [s for s, _, _ in history] == list(range(300))


def test_changing_a_param_is_refused(client: modelog.Client) -> None:
    with modelog.start_run(experiment="params", params={"lr": 0.1}) as run:
        run.log_params({"lr": 0.1})  # the same value is fine
        with pytest.raises(errors.InvalidArgument, match="lr"):
            run.log_params({"lr": 0.2})
    assert modelog.get_run(run.id).params == {"lr": "0.1"}


def test_exception_marks_failed_and_nested_runs_know_their_parent(client: modelog.Client) -> None:
    with pytest.raises(RuntimeError):
        train("failing", fail=True)
    failed = modelog.search_runs("failing")
    assert [r.status for r in failed] == ["FAILED"]
    with (
        modelog.start_run(experiment="nested") as parent,
        modelog.start_run(experiment="nested", parent=parent) as child,
    ):
        child.log_metric("x", 1.0)
    assert modelog.get_run(child.id).parent_run_id == parent.id
    with pytest.raises(KeyboardInterrupt), modelog.start_run(experiment="nested") as killed:
        raise KeyboardInterrupt
    assert modelog.get_run(killed.id).status == "KILLED"


def test_logging_to_a_finished_run_is_refused(client: modelog.Client) -> None:
    with modelog.start_run(experiment="closed") as run:
        pass
    with pytest.raises(errors.FailedPrecondition, match="FINISHED"):
        run.log_params({"late": 1})


def test_a_batch_resent_after_a_lost_acknowledgement_is_stored_once(client: modelog.Client) -> None:
    with modelog.start_run(experiment="flaky") as run:
        real = run._t.send_metrics
        lost = {"n": 0}

        def drop_ack(batches: list[Any]) -> None:
            real(batches)  # the server stored it...
            if lost["n"] < 2:
                lost["n"] += 1
                raise errors.Unavailable("connection reset before the reply")  # ...but the reply is lost

        run._t.send_metrics = drop_ack  # type: ignore[method-assign]
        for step in range(500):
            run.log_metrics({"m": float(step)}, step=step)
        assert run.flush(timeout=30)
    assert lost["n"] == 2
    assert modelog.get_run(run.id).metric_summaries["m"]["count"] == 500
    assert len(modelog.metric_history(run.id, "m")) == 500


def test_offline_then_sync_equals_online(client: modelog.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    online_id = train("offline-vs-online", steps=200)
    monkeypatch.setenv("MODELOG_MODE", "offline")
    offline = modelog.connect()
    assert offline.offline
    offline_id = train("offline-vs-online", steps=200)
    offline.close()
    with pytest.raises(errors.NotFound):
        modelog.connect(offline=False).get_run(offline_id)
    monkeypatch.delenv("MODELOG_MODE")
    from modelog._transport import sync

    c = modelog.connect()
    report = sync(c.home / "offline", c._online())
    assert report.journals == 1 and report.calls > 0
    a, b = modelog.get_run(online_id), modelog.get_run(offline_id)
    for field in ("status", "params", "tags", "metric_summaries", "datasets"):
        assert getattr(a, field) == getattr(b, field), field
    assert sync(c.home / "offline", c._online()).calls == 0  # nothing left


def test_system_metrics_are_sampled_in_the_background(client: modelog.Client) -> None:
    with modelog.start_run(experiment="system", system_metrics=0.05) as run:
        wait_until(lambda: run._batcher.enqueued >= 6, 10, "six samples of system metrics")
    metrics = modelog.get_run(run.id).metrics
    assert "system/cpu_percent" in metrics and "system/memory_percent" in metrics


def test_cli_lists_shows_compares_and_plots_runs(client: modelog.Client, server: tuple[str, Path]) -> None:
    import json
    import subprocess

    from tests.procs import MODELOG

    a, b = train("cli-demo", steps=50), train("cli-demo", steps=80)
    addr, home = server
    env = env_for(home, addr, MODELOG_URL=addr)

    def cli(*args: str) -> str:
        return subprocess.run(
            [*MODELOG, *args], env=env, capture_output=True, text=True, timeout=60, check=True
        ).stdout

    listed = json.loads(cli("runs", "list", "-e", "cli-demo", "-o", "metrics.loss ASC", "--json"))
    assert [r["id"] for r in listed] == [b, a]  # 80 steps reach a lower loss
    shown = json.loads(cli("runs", "show", a, "--json"))
    assert shown["params"] == {"lr": "0.01", "layers": "3"}
    compared = cli("runs", "compare", a, b)
    assert "params.lr" in compared and "metrics.loss" in compared
    plot = cli("metrics", "plot", a, "loss")
    assert "* loss" in plot and "step 0 .. 49" in plot
    bad = subprocess.run(
        [*MODELOG, "runs", "list", "-e", "cli-demo", "-f", "metrics.loss >"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "column" in bad.stderr


def test_one_client_root_carries_every_part_on_its_own_connection(
    client: modelog.Client, server: tuple[str, Path], tmp_path: Path
) -> None:
    addr, _ = server
    with client.runs.start("root-parts", params={"lr": 0.1}) as run:
        run.log_metrics({"loss": 0.5}, step=1)
    assert client.runs.get(run.id).params == {"lr": "0.1"}
    assert [r.id for r in client.runs.search("root-parts")] == [run.id]
    assert client.experiments.get("root-parts").name == "root-parts"
    assert "root-parts" in {e.name for e in client.experiments.list()}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    version = client.artifacts.log_artifacts(str(tmp_path / "data"), name="root-data", run_id=run.id)
    assert client.artifacts.get("root-data:1").version == version.version == 1
    assert client.artifacts.get("root-data/1").version == 1  # one grammar: ':' or '/' then a version
    client.models.create("root-model")
    assert client.models.model("root-model").name == "root-model"
    assert isinstance(client.webhooks.list(), list)
    # The lineage view is fed from the event stream: wait for the run to reach it.
    graph = wait_until(
        lambda: client.lineage.lineage(f"run:{run.id}"), 30, "the run in lineage", ignoring=(errors.NotFound,)
    )
    assert graph.nodes
    assert client.audit.public_key().public_key

    # A second client, as someone else: every part goes through *its* connection, never the default's.
    other = modelog.Client(addr, token="not-a-token")
    try:
        calls = [
            lambda: other.runs.get(run.id),
            lambda: other.experiments.get("root-parts"),
            lambda: other.artifacts.get("root-data:1"),
            lambda: other.models.model("root-model"),
            lambda: other.monitors.list(),
            lambda: other.webhooks.list(),
            lambda: other.lineage.lineage(f"run:{run.id}"),
            lambda: other.audit.public_key(),
        ]
        for call in calls:
            with pytest.raises(errors.Unauthenticated):
                call()
    finally:
        other.close()
    with pytest.raises(AttributeError, match="no client call 'not_a_call'"):
        client.artifacts.not_a_call  # noqa: B018
