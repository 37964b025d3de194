"""How the registry SDK names things: stages and statuses by name, and the references a person
types, by the grammar of modelog.shared.refs: "churn/3" or "churn:3" (a version), "churn@champion" (an
alias), "churn" or "churn/latest" (the newest); artifacts alike ("ds:3", "ds@prod").
"""

from __future__ import annotations

from typing import Any

from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog.errors import InvalidArgument

STAGES = {
    "none": pb.STAGE_NONE,
    "staging": pb.STAGE_STAGING,
    "production": pb.STAGE_PRODUCTION,
    "archived": pb.STAGE_ARCHIVED,
}
STAGE_NAMES = {
    pb.STAGE_NONE: "None",
    pb.STAGE_STAGING: "Staging",
    pb.STAGE_PRODUCTION: "Production",
    pb.STAGE_ARCHIVED: "Archived",
}
STATUS_NAMES = {
    pb.VERSION_STATUS_READY: "READY",
    pb.VERSION_STATUS_DEPRECATED: "DEPRECATED",
    pb.VERSION_STATUS_DELETED: "DELETED",
}
REQUEST_NAMES = {
    pb.REQUEST_STATUS_OPEN: "OPEN",
    pb.REQUEST_STATUS_APPROVED: "APPROVED",
    pb.REQUEST_STATUS_REJECTED: "REJECTED",
    pb.REQUEST_STATUS_CANCELLED: "CANCELLED",
}


def stage_value(stage: str) -> pb.Stage.ValueType:
    value = STAGES.get(stage.strip().lower())
    if value is None:
        raise InvalidArgument(f"unknown stage {stage!r}; stages are None, Staging, Production and Archived")
    return value


def parse_model_ref(ref: str) -> pb.VersionRef:
    """A version reference by the one grammar (modelog.shared.refs): "churn/3", "churn:3", "churn@champion",
    "churn" or "churn/latest" (the newest)."""
    from modelog.shared.refs import parse

    model, version, alias = parse(ref, "ref", what="model")
    return pb.VersionRef(model=model, version=version or 0, alias=alias or "")


def artifact_ref(artifact: Any) -> pb.ArtifactRef:
    """An artifact version: "name:3", "name@alias", "name" (the latest), or an ArtifactVersion."""
    if not isinstance(artifact, str):
        return pb.ArtifactRef(name=artifact.name, version=artifact.version)
    from modelog.shared.artifacts.refs import parse_ref  # the rule the server applies too

    parsed = parse_ref(artifact, "artifact")
    return pb.ArtifactRef(name=parsed.name, version=parsed.version or 0, alias=parsed.alias or "")
