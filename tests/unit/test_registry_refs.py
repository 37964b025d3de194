"""How people name versions in the SDK and CLI, and the sentences History tells."""

from __future__ import annotations

import pytest

from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog.errors import InvalidArgument
from modelog.registry import artifact_ref, parse_model_ref, stage_value
from modelog_services.registry.events import AliasSet, ModelPolicy, PolicySet, TransitionRequested
from modelog_services.registry.history import summary


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn/3", pb.VersionRef(model="churn", version=3)),
        ("churn/v3", pb.VersionRef(model="churn", version=3)),
        ("churn:3", pb.VersionRef(model="churn", version=3)),
        ("churn@champion", pb.VersionRef(model="churn", alias="champion")),
        ("churn", pb.VersionRef(model="churn")),
        ("churn/latest", pb.VersionRef(model="churn")),
        ("team churn.v2@prod", pb.VersionRef(model="team churn.v2", alias="prod")),
    ],
)
def test_version_references(text: str, expected: pb.VersionRef) -> None:
    assert parse_model_ref(text) == expected


@pytest.mark.parametrize("text", ["churn/0", "churn/x", "churn/"])
def test_bad_version_references_say_what_is_expected(text: str) -> None:
    with pytest.raises(InvalidArgument, match="version number"):
        parse_model_ref(text)


def test_artifact_references_follow_the_artifacts_sdk() -> None:
    assert artifact_ref("model:v3") == pb.ArtifactRef(name="model", version=3)
    assert artifact_ref("model@prod") == pb.ArtifactRef(name="model", alias="prod")
    assert artifact_ref("model/3") == artifact_ref("model:3") == pb.ArtifactRef(name="model", version=3)
    assert artifact_ref("model") == pb.ArtifactRef(name="model")


def test_stages_are_named_case_insensitively() -> None:
    assert stage_value("production") == stage_value("Production") == pb.STAGE_PRODUCTION
    with pytest.raises(InvalidArgument, match="unknown stage"):
        stage_value("prod")


def test_history_sentences_name_the_actor_and_what_moved() -> None:
    assert summary(AliasSet(alias="champion", version=3, previous=2), "bob") == (
        "bob moved alias 'champion' from version 2 to version 3"
    )
    assert (
        summary(AliasSet(alias="champion", version=3), "bob") == "bob pointed alias 'champion' at version 3"
    )
    requested = TransitionRequested(
        request_id="r1",
        version=3,
        from_stage="Staging",
        to_stage="Production",
        by="alice",
        comment="better AUC",
        approvals_required=2,
        approver_role="member",
    )
    assert (
        summary(requested, "alice")
        == "alice requested Production for version 3 (needs 2 approval(s)): 'better AUC'"
    )
    policy = summary(PolicySet(policy=ModelPolicy(), previous=ModelPolicy()), "root")
    assert "Production needs 1 approval(s) from members from Staging" in policy
