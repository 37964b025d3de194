"""What `modelog timeline` (and `modelog.timeline(...).summary`) says about each event: what it did,
abbreviated to one line, never the bare type name for an event this service knows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from eventlog import RecordedEvent
from modelog_services.audit.summaries import summary


def event(log: str, stream: str, etype: str, payload: dict[str, Any]) -> RecordedEvent:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    return RecordedEvent(log, 7, stream, 1, "e1", etype, 1, json.dumps(payload), "{}", at, b"", b"")


@pytest.mark.parametrize(
    ("log", "stream", "etype", "payload", "said"),
    [
        (
            "tracking", "run-r1", "ParamsLogged", {"params": {"lr": "0.05", "trees": "200"}},
            "alice logged params lr=0.05, trees=200",
        ),
        (
            "tracking", "run-r1", "ParamsLogged", {"params": {f"p{i}": "x" * 40 for i in range(7)}},
            "alice logged params " + ", ".join(f"p{i}={'x' * 31}…" for i in range(5)) + " (+2 more)",
        ),
        (
            "tracking", "run-r1", "MetricsLogged",
            {"keys": ["loss", "acc", "loss", "acc"], "values": [1.0, 0.5, 0.9, 0.6], "steps": [0, 0, 1, 1],
             "timestamps_ms": [1, 1, 2, 2]},
            "alice logged 4 metric points of loss, acc, steps 0..1",
        ),
        (
            "tracking", "run-r1", "MetricsLogged",
            {"keys": ["loss"], "values": ["NaN"], "steps": [3], "timestamps_ms": [1]},
            "alice logged 1 metric point of loss, step 3",
        ),
        ("tracking", "run-r1", "TagsSet", {"tags": {"team": "nlp"}}, "alice set tags team=nlp"),
        ("tracking", "run-r1", "TagDeleted", {"key": "team"}, "alice deleted tag 'team'"),
        ("tracking", "run-r1", "RunDeleted", {}, "alice deleted the run"),
        ("tracking", "experiment-e1", "ExperimentCreated", {"name": "churn", "experiment_id": "e1",
         "created_at_ms": 1}, "alice created experiment 'churn'"),
        (
            "artifacts", "artifact-ds", "ArtifactAliasSet", {"alias": "prod", "version": 3, "previous": 2},
            "alice moved alias 'prod' of ds from v2 to v3",
        ),
        (
            "artifacts", "artifact-ds", "ArtifactVersionCommitted",
            {"name": "ds", "version": 1, "kind": "dataset", "manifest": "m", "file_count": 1,
             "total_size": 2048},
            "alice committed ds:v1 (dataset, 1 file, 2,048 bytes)",
        ),
        (
            "monitoring", "monitor-churn-prod", "DriftDetected",
            {"window": 4, "drift_share": 0.6, "drifted_columns": ["age", "income"], "consecutive": 2},
            "alice detected drift in window 4 (age, income; 2 window(s) in a row)",
        ),
        (
            "registry", "model-m1", "VersionStageChanged",
            {"version": 1, "from_stage": "None", "to_stage": "Staging", "reason": ""},
            "version 1 moved from no stage to Staging, on alice's decision",
        ),
        ("tracking", "run-r1", "SomethingNewer", {"x": 1}, "alice: SomethingNewer"),
        ("tracking", "run-r1", "ParamsLogged", {"unexpected": "shape"}, "alice logged params nothing"),
    ],
)  # fmt: skip
def test_a_timeline_line_says_what_the_event_did(
    log: str, stream: str, etype: str, payload: dict[str, Any], said: str
) -> None:
    assert summary(event(log, stream, etype, payload), "alice") == said
