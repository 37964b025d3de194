"""What the CLI prints and how it exits, against `modelog up` (a real server process, PostgreSQL and
broker): a metric a run never logged, `data status` letters and exit code, stages and approvals in
words, timelines that say what happened, an export of a model outside the range, `events replay
--to-topic` finding the embedded broker, and `events tail` whose reader goes away."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import modelog
from modelog.cli import main
from modelog.registry import register_model
from tests.integration.test_bus import consume
from tests.integration.test_registry_sdk import Server, alice, server, train_and_package
from tests.integration.test_up import addr, up_process
from tests.procs import MODELOG, Up, env_for
from tests.waiting import wait_until

__all__ = ["addr", "alice", "server", "up_process"]


def cli(server: Server, *args: str) -> Result:
    env = {
        "MODELOG_URL": server.addr,
        "MODELOG_TOKEN": server.tokens["admin"],
        "MODELOG_HOME": str(server.home),
        "MODELOG_KAFKA_BOOTSTRAP": None,
    }
    return CliRunner().invoke(main, list(args), env=env)


def test_plotting_a_metric_the_run_never_logged_names_the_ones_it_has(
    server: Server, alice: modelog.Client, tmp_path: Path
) -> None:
    run_id, _, _ = train_and_package(tmp_path, "plot-model")
    missing = cli(server, "metrics", "plot", run_id, "auc", "nosuch")
    assert missing.exit_code == 1 and missing.stdout == ""
    assert (
        missing.stderr == f"modelog: NOT_FOUND: run {run_id} has no metric 'nosuch'; its metrics: auc, loss\n"
    )
    plotted = cli(server, "metrics", "plot", run_id, "auc", "--json")
    assert plotted.exit_code == 0 and len(json.loads(plotted.stdout)["auc"]) == 5


def test_data_status_uses_the_letters_of_data_diff_and_exit_code_3(server: Server, tmp_path: Path) -> None:
    work = tmp_path / "ds"
    work.mkdir()
    for name in ("a.txt", "b.txt"):
        (work / name).write_text(name)
    assert cli(server, "data", "add", str(work), "--name", "cli-ds", "--json").exit_code == 0
    (work / "a.txt").write_text("changed")
    (work / "b.txt").unlink()
    (work / "c.txt").write_text("new")

    status = cli(server, "data", "status", str(work))
    assert status.exit_code == 3, status.output
    changes = set(status.stdout.splitlines()[1:])
    assert changes == {"A c.txt", "M a.txt", "D b.txt"}
    assert cli(server, "data", "add", str(work), "--json").exit_code == 0
    diff = cli(server, "data", "diff", "cli-ds@v1", "cli-ds@v2")
    assert {" ".join(line.split()[:2]) for line in diff.stdout.splitlines()[1:]} == changes
    assert "3 when anything changed" in " ".join(cli(server, "data", "status", "--help").stdout.split())


def test_stages_and_approvals_are_words_never_none(
    server: Server, alice: modelog.Client, tmp_path: Path
) -> None:
    run_id, package, _ = train_and_package(tmp_path, "stages-model")
    v = register_model(run_id, artifact=f"{package.name}:v{package.version}", name="stages")
    fresh = cli(server, "models", "show", "stages/1")
    assert fresh.exit_code == 0, fresh.output
    assert "stage: (none)" in fresh.stdout.splitlines() and "pending: -" in fresh.stdout.splitlines()
    listed = cli(server, "models", "show", "stages")
    assert "(none)" in listed.stdout and "None" not in fresh.stdout + listed.stdout

    v.request_transition("Staging")  # the default policy needs no approval for Staging
    requests = cli(server, "models", "requests", "stages")
    assert "stages/1 (none) -> Staging, APPROVED" in requests.stdout
    assert "no approval needed (policy)" in requests.stdout and "None" not in requests.stdout
    then = cli(server, "models", "show", "stages", "--as-of", datetime.now(UTC).isoformat())
    assert then.exit_code == 0, then.output
    assert "requested by alice, no approval needed (policy)" in then.stdout
    assert "approved by no approval needed" not in then.stdout
    history = cli(server, "models", "history", "stages")
    assert "version 1 moved from no stage to Staging, on alice's decision" in history.stdout


def test_a_timeline_says_what_each_event_did(server: Server, alice: modelog.Client, tmp_path: Path) -> None:
    run_id, _, _ = train_and_package(tmp_path, "timeline-model")

    def complete() -> str:  # the timeline is fed over Kafka: wait until it has the whole story
        out = cli(server, "timeline", f"run:{run_id}").stdout
        return out if "finished the run as FINISHED" in out and "committed timeline-model:v1" in out else ""

    text = wait_until(complete, 30, "the run's whole timeline", every=0.1)
    assert "alice logged params lr=0.05, trees=200" in text
    batches = re.findall(r"alice logged (\d+) metric points? of ((?:auc|loss)(?:, (?:auc|loss))?)", text)
    assert batches and sum(int(n) for n, _ in batches) == 10  # however the SDK cut the batches
    assert {k for _, keys in batches for k in keys.split(", ")} == {"auc", "loss"}
    assert "logged dataset 'customers-2026-10'" in text
    assert not re.search(r": [A-Z][A-Za-z]+$", text, re.MULTILINE), text  # no bare `alice: ParamsLogged`


def test_exporting_a_model_registered_after_the_range_says_it_exists(server: Server, tmp_path: Path) -> None:
    assert cli(server, "models", "create", "exported").exit_code == 0
    out = tmp_path / "q3.bundle"
    before = cli(
        server, "audit", "export", "--out", str(out), "--from", "2020-07-01", "--to", "2020-10-01",
        "--model", "exported",
    )  # fmt: skip
    assert before.exit_code == 1 and not out.exists()
    [line] = before.stderr.splitlines()
    assert line.startswith("modelog: NOT_FOUND: model 'exported' exists but has no events in this range")
    assert "after the range ends" in line and "never" not in line
    unknown = cli(server, "audit", "export", "--out", str(out), "--model", "never-made")
    assert "no registered model was ever named 'never-made'" in unknown.stderr
    whole = cli(server, "audit", "export", "--out", str(out), "--model", "exported", "--json")
    assert whole.exit_code == 0 and Path(json.loads(whole.stdout)["path"]).exists()


@pytest.mark.slow
def test_replay_to_a_topic_finds_the_broker_modelog_up_recorded(
    up_process: Up, modelog_home: Path, addr: str
) -> None:
    ready = up_process.wait_for("modelog ready on", 60)
    match = re.search(r"kafka: (\S+)", ready)
    assert match
    bootstrap = match.group(1)
    recorded = modelog_home / "kafka-bootstrap"
    assert recorded.read_text().strip() == bootstrap
    env = env_for(modelog_home, addr)  # neither --bootstrap nor MODELOG_KAFKA_BOOTSTRAP
    args = ["events", "replay", "--from", "start", "--service", "identity", "--to-topic", "cli.replayed"]
    replayed = subprocess.run([*MODELOG, *args], env=env, capture_output=True, text=True, timeout=60)
    assert replayed.returncode == 0, replayed.stderr
    sent = re.search(r"re-delivered (\d+) events to cli.replayed", replayed.stdout)
    assert sent and int(sent.group(1)) >= 2  # the admin and internal tokens
    got = asyncio.run(consume(bootstrap, "cli.replayed", int(sent.group(1))))
    assert len(got) == int(sent.group(1))
    assert up_process.stop() == 0
    assert not recorded.exists()


def test_tail_stops_quietly_when_its_reader_goes_away(server: Server) -> None:
    env = env_for(server.home, server.addr)
    for i in range(3):  # the traceback came from a thread about one time in eight
        tail = subprocess.Popen(
            [*MODELOG, "events", "tail", "--from", "1", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert tail.stdout is not None and tail.stderr is not None
        assert tail.stdout.readline().startswith("{")
        tail.stdout.close()  # `| head -1`
        server.user(f"tail-reader-{i}")  # an event for it to write into the closed pipe
        assert tail.wait(30) == 141
        assert tail.stderr.read() == ""
