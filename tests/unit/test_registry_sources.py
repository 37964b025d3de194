"""The MLflow source a model version may carry: MLflow 3.17's rule, in the registry's decider (so gRPC
callers meet it too), refusing sources that name the server's files or climb out of the run."""

from __future__ import annotations

import pytest

from eventlog import DomainEvent, InvalidArgument
from modelog_services.registry import domain as d
from modelog_services.registry.domain import model_decider
from modelog_services.registry.events import (
    ArtifactLineage,
    ModelRegistered,
    ModelVersionCreated,
    RunLineage,
    VersionAnnotated,
)
from modelog_services.registry.sources import MODEL_ID_TAG, SOURCE_TAG, source_problem
from tests import gwt

REGISTERED = ModelRegistered(model_id="m1", name="churn")
RUN = RunLineage(run_id="r1", experiment_id="e1", run_name="brave-otter-1", status="FINISHED")
ARTIFACT = ArtifactLineage(name="model", version=1, kind="model", manifest_digest="ab" * 32)

REFUSED = [
    "file:///etc/passwd",
    "/etc",
    "etc/passwd",
    "C:\\Windows\\System32",
    "mlflow-artifacts://host:9000/models/../../../",
    "http://host/../../../",
    "https://host:5000/api/2.0/mlflow-artifacts/artifacts/../../../../",
    "mlflow-artifacts:/e1/r1/artifacts/../../../etc",
    "mlflow-artifacts:/e1/r1/artifacts/..%2f..%2f..%2fetc",
    "mlflow-artifacts:/e1/r1/artifacts/%252e%252e/%252e%252e/etc",
    "mlflow-artifacts:/e1/r1/artifacts/..\\..\\etc",
    "s3://bucket/models/path/../../other/path",
    "s3://bucket/models/./path",
    "http://host:5000/api/2.0/mlflow-artifacts/artifacts%00",
    "mlflow-artifacts:/e1/other-run/artifacts/model",
    "mlflow-artifacts://elsewhere/e1/r1/artifacts/model",
    "https://host/api/2.0/mlflow-artifacts/artifacts/e1/r1/artifacts/model",
    "runs:/other-run/model",
    "runs://r1/model",
    "models://profile@databricks/m-1",
]

ACCEPTED = [
    "runs:/r1/model",
    "runs:/r1/",
    "mlflow-artifacts:/e1/r1/artifacts/model",
    "mlflow-artifacts:/0/r1/artifacts/model",
    "models:/m-abc",
    "models:/churn/3",
    "s3://bucket/models/model",
    "https://example.com/model.tar.gz",
]


@pytest.mark.parametrize("source", REFUSED)
def test_a_source_outside_the_run_or_on_the_server_is_refused(source: str) -> None:
    assert source_problem(source, "r1") is not None


@pytest.mark.parametrize("source", ACCEPTED)
def test_sources_mlflow_accepts_for_the_run_are_accepted(source: str) -> None:
    assert source_problem(source, "r1") is None


def test_a_logged_models_files_are_a_source_for_that_model_only() -> None:
    source = "mlflow-artifacts:/e1/models/m-abc/artifacts/model.pkl"
    assert source_problem(source, "r1", "m-abc") is None
    assert source_problem(source, "r1", "m-other") is not None
    assert source_problem(source, "r1") is not None
    assert source_problem("models:/m-abc", "r1", "m-other") is not None


def when(given: list[DomainEvent], command: d.ModelCommand) -> list[DomainEvent]:
    return gwt.when(model_decider, given, command)


@pytest.mark.parametrize("source", ["file:///etc/passwd", "mlflow-artifacts://host:9000/models/../../../"])
def test_the_decider_refuses_a_version_whose_source_escapes_its_run(source: str) -> None:
    cmd = d.CreateVersion(run=RUN, artifact=ARTIFACT, tags={SOURCE_TAG: source})
    with pytest.raises(InvalidArgument, match="Invalid model version source"):
        when([REGISTERED], cmd)


def test_the_decider_keeps_a_source_inside_the_run() -> None:
    cmd = d.CreateVersion(run=RUN, artifact=ARTIFACT, tags={SOURCE_TAG: "runs:/r1/model"})
    [event] = when([REGISTERED], cmd)
    assert isinstance(event, ModelVersionCreated) and event.tags[SOURCE_TAG] == "runs:/r1/model"


def test_a_source_cannot_be_changed_afterwards_to_one_outside_the_run() -> None:
    given: list[DomainEvent] = [REGISTERED, ModelVersionCreated(version=1, run=RUN, artifact=ARTIFACT)]
    with pytest.raises(InvalidArgument, match="Invalid model version source"):
        when(given, d.AnnotateVersion(version=1, tags={SOURCE_TAG: "/etc"}))
    with pytest.raises(InvalidArgument, match="Invalid model version source"):
        tags = {SOURCE_TAG: "mlflow-artifacts:/e1/models/m-a/artifacts", MODEL_ID_TAG: "m-b"}
        when(given, d.AnnotateVersion(version=1, tags=tags))
    ok = when(given, d.AnnotateVersion(version=1, tags={SOURCE_TAG: "runs:/r1/other"}))
    assert ok == [VersionAnnotated(version=1, tags={SOURCE_TAG: "runs:/r1/other"})]
