"""Events larger than one Kafka message reach the topic whole and in order, and never stall the relay.

Against `modelog up` (real PostgreSQL, the embedded broker): runs log 100k and 1M points, and a later
event of the same log still reaches the topic, with every point readable from the messages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

import modelog
from eventlog.cloudevents import Assembler, topic_for
from eventlog.records import RecordedEvent
from modelog_platform.embedded import free_port
from tests.procs import Up, env_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, str, str, Path]]:
    home = tmp_path_factory.mktemp("relay-home")
    addr = f"127.0.0.1:{free_port()}"
    up = Up(env_for(home, addr))
    ready = up.wait_for("modelog ready on", 60)
    bootstrap = ready.split("kafka: ", 1)[1].split(" |", 1)[0].strip()
    yield up, bootstrap, addr, home
    up.stop()


@pytest.fixture
def client(
    stack: tuple[Up, str, str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    _, _, addr, home = stack
    monkeypatch.setenv("MODELOG_URL", addr)
    monkeypatch.setenv("MODELOG_TOKEN", (home / "admin-token").read_text().strip())
    monkeypatch.setenv("MODELOG_HOME", str(tmp_path / "client-home"))
    monkeypatch.delenv("MODELOG_MODE", raising=False)
    c = modelog.connect()
    yield
    c.close()


def log_points(experiment: str, points: int) -> str:
    with modelog.start_run(experiment=experiment) as run:
        for step in range(points):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    return run.id


async def read_topic(bootstrap: str, *, stop_run: str) -> list[RecordedEvent]:
    """Every tracking event on the topic up to the TagsSet on `stop_run`, reassembled, by position.

    Partitions interleave (order is per stream), so reading ends once every position up to that
    event's has arrived."""
    consumer = AIOKafkaConsumer(
        topic_for("tracking"),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    assembler = Assembler()
    got: dict[int, RecordedEvent] = {}
    per_stream: dict[str, list[int]] = {}
    last = 0
    await consumer.start()
    try:
        async with asyncio.timeout(90):
            # Streams sit on different partitions: a later position can arrive before an earlier one's
            # last chunk, so wait for every position up to `last`, not for a count.
            while not last or any(p not in got for p in range(1, last + 1)):
                batch = await consumer.getmany(timeout_ms=200)
                for msgs in batch.values():
                    for m in msgs:
                        ev = assembler.offer(m.value or b"", m.headers or ())
                        if ev is None:
                            continue
                        got.setdefault(ev.position, ev)
                        per_stream.setdefault(ev.stream_id, []).append(ev.position)
                        if ev.type == "TagsSet" and stop_run in ev.stream_id:
                            last = ev.position
    finally:
        await consumer.stop()
    assert all(ps == sorted(ps) for ps in per_stream.values()), "a stream's events out of order"
    return [got[p] for p in sorted(got) if p <= last]


@pytest.mark.slow
def test_a_later_event_reaches_the_topic_after_runs_of_100k_and_1m_points(
    stack: tuple[Up, str, str, Path], client: None
) -> None:
    small = log_points("relay-large", 100_000)
    big = log_points("relay-large", 1_000_000)
    modelog.get_run(big)  # both runs are committed
    with modelog.start_run(experiment="relay-large") as later:
        later.set_tags({"after": "the big batches"})

    events = asyncio.run(read_topic(stack[1], stop_run=later.id))

    points: dict[str, list[int]] = {}
    for ev in events:
        if ev.type == "MetricsLogged":
            points.setdefault(ev.stream_id, []).extend(json.loads(ev.payload_json)["steps"])
    by_run = {run: sorted(steps) for run, steps in points.items() if small in run or big in run}
    assert sorted(len(s) for s in by_run.values()) == [100_000, 1_000_000]
    assert all(steps == list(range(len(steps))) for steps in by_run.values()), "a point lost or repeated"
    assert [ev.position for ev in events] == list(range(1, len(events) + 1))
    assert "relay" not in "".join(line for line in stack[0].output if "WARNING" in line or "ERROR" in line)
