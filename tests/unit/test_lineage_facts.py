"""What single events say about lineage (pure): keys, edges opened and closed, timelines, tolerance."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from eventlog import InvalidArgument, RecordedEvent
from modelog_services.audit.lineage_facts import EdgeClose, EdgeOpen, artifact_key, dataset_key, facts_of
from modelog_services.audit.lineage_query import Names, parse_entity


def ev(log: str, stream: str, type_: str, payload: dict[str, Any]) -> RecordedEvent:
    return RecordedEvent(
        log, 1, stream, 1, "0" * 32, type_, 1, json.dumps(payload), "{}",
        datetime(2026, 1, 1, tzinfo=UTC), b"", b"",
    )  # fmt: skip


def test_digests_and_artifact_refs_have_one_key_however_they_are_written() -> None:
    assert dataset_key("sha256:ABCD") == dataset_key("abcd") == "dataset:abcd"
    assert artifact_key("ds:v3") == artifact_key("ds/3") == artifact_key("ds@3") == "artifact:ds:v3"
    assert artifact_key("ds:prod") == artifact_key("ds@prod") == "artifact:ds@prod"
    assert artifact_key("ds") == artifact_key("ds:latest") == "artifact:ds"


def test_a_dataset_input_links_the_dataset_to_the_run() -> None:
    f = facts_of(ev("tracking", "run-r1", "DatasetInputLogged", {"name": "train", "digest": "sha256:AB"}))
    assert f.edges == [EdgeOpen("dataset:ab", "run:r1", "input")]
    assert f.entities == ["run:r1", "dataset:ab"]


def test_a_dataset_artifact_version_is_its_content_and_a_model_artifact_is_not() -> None:
    body = {"name": "ds", "version": 2, "kind": "dataset", "manifest": "CD", "file_count": 1, "total_size": 9}
    f = facts_of(ev("artifacts", "artifact-ds", "ArtifactVersionCommitted", {**body, "run_id": "r1"}))
    assert EdgeOpen("artifact:ds:v2", "dataset:cd", "content") in f.edges
    assert EdgeOpen("run:r1", "artifact:ds:v2", "produced") in f.edges
    model = facts_of(ev("artifacts", "artifact-m", "ArtifactVersionCommitted", {**body, "kind": "model"}))
    assert not any(isinstance(e, EdgeOpen) and e.relation == "content" for e in model.edges)


def test_moving_an_alias_closes_the_old_edge_before_opening_the_new_one() -> None:
    f = facts_of(ev("registry", "model-m1", "AliasSet", {"alias": "champion", "version": 2, "previous": 1}))
    assert f.edges == [
        EdgeClose("model:m1@champion", "alias"),
        EdgeOpen("model:m1/2", "model:m1@champion", "alias"),
    ]
    staged = facts_of(
        ev(
            "registry",
            "model-m1",
            "VersionStageChanged",
            {"version": 1, "from_stage": "Production", "to_stage": "Archived"},
        )
    )
    assert staged.edges == [
        EdgeClose("model:m1#Production", "stage", "model:m1/1"),
        EdgeOpen("model:m1/1", "model:m1#Archived", "stage"),
    ]


def test_a_monitor_names_the_model_by_name_and_reading_resolves_it() -> None:
    body = {"name": "p", "model": "churn", "model_ref": "churn@champion", "reference": "ds:v1"}
    f = facts_of(ev("monitoring", "monitor-p", "MonitorConfigured", body))
    assert EdgeOpen("model-name:churn@champion", "monitor:p", "monitors") in f.edges
    assert EdgeOpen("artifact:ds:v1", "monitor:p", "reference") in f.edges
    names = Names(current={"m1": "churn-v2"}, held={"m1": ["churn", "churn-v2"]}, holder={"churn": "m1"})
    assert names.canon("model-name:churn@champion") == "model:m1@champion"
    assert names.label("model:m1@champion") == "model:churn-v2@champion"
    assert "model-name:churn@champion" in names.aliases("model:m1@champion")


def test_an_event_of_an_unknown_shape_keeps_its_timeline_entry_and_adds_nothing_else() -> None:
    f = facts_of(ev("registry", "model-m1", "ModelVersionCreated", {"version": 3, "run": "not a dict"}))
    assert f.entities == ["model:m1", "model:m1/3"] and not f.edges and not f.nodes
    assert not facts_of(ev("artifacts", "blob-x", "BlobStored", {"digest": "x", "size": 1})).entities


def test_entities_are_parsed_strictly() -> None:
    names = Names(current={"m1": "churn"}, held={"m1": ["churn"]}, holder={"churn": "m1"})
    assert parse_entity("model:churn#production", names) == "model:m1#Production"
    assert parse_entity("model:churn/3", names) == "model:m1/3"
    for bad in ("churn/3", "model:", "thing:x", "model:churn#Prod"):
        with pytest.raises(InvalidArgument):
            parse_entity(bad, names)
