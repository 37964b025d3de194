"""How the registry's models and versions look in MLflow's JSON, and the attributes MLflow's registry
search filters and sorts on. The MLflow source, run_link and model_id of a version are kept as version
tags `modelog.mlflow.*`, hidden from MLflow's tags and refused as MLflow tag keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from eventlog.errors import InvalidArgument
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog_services.gateway.mlflow.common import Body, pairs
from modelog_services.registry.sources import MODEL_ID_TAG, SOURCE_TAG

RUN_LINK_TAG = "modelog.mlflow.run_link"
RESERVED_TAGS = (SOURCE_TAG, RUN_LINK_TAG, MODEL_ID_TAG)

STAGE_NAME = {
    pb.STAGE_NONE: "None",
    pb.STAGE_STAGING: "Staging",
    pb.STAGE_PRODUCTION: "Production",
    pb.STAGE_ARCHIVED: "Archived",
}
STAGE_ENUM = {name.lower(): value for value, name in STAGE_NAME.items()}


def ms(ts: Timestamp) -> int:
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


# ---------------------------------------------------------------- JSON shapes


def version_source(v: pb.ModelVersion) -> str:
    """The source MLflow gave, or for a version registered outside MLflow its artifact version."""
    return v.tags.get(SOURCE_TAG) or f"modelog-artifact:{v.artifact_name}:v{v.artifact_version}"


def version_json(v: pb.ModelVersion) -> Body:
    tags = {k: val for k, val in v.tags.items() if k not in RESERVED_TAGS}
    out: Body = {
        "name": v.model,
        "version": str(v.version),
        "creation_timestamp": ms(v.created_at),
        "last_updated_timestamp": ms(v.updated_at),
        "user_id": v.created_by,
        "current_stage": STAGE_NAME.get(v.stage, "None"),
        "description": v.description,
        "source": version_source(v),
        "run_id": v.run_id,
        "status": "READY",
        "tags": pairs(tags),
        "run_link": v.tags.get(RUN_LINK_TAG, ""),
        "aliases": sorted(v.aliases),
    }
    if v.status == pb.VERSION_STATUS_DEPRECATED:
        out["status_message"] = "deprecated in Modelog: it can only be archived"
    if v.tags.get(MODEL_ID_TAG):
        out["model_id"] = v.tags[MODEL_ID_TAG]
    return out


def model_json(m: pb.Model, latest: Sequence[pb.ModelVersion] = ()) -> Body:
    return {
        "name": m.name,
        "creation_timestamp": ms(m.created_at),
        "last_updated_timestamp": ms(m.updated_at),
        "user_id": m.created_by,
        "description": m.description,
        "latest_versions": [version_json(v) for v in latest],
        "tags": pairs(m.tags),
        "aliases": [{"alias": a, "version": str(n)} for a, n in sorted(m.aliases.items())],
    }


def latest_per_stage(
    versions: Sequence[pb.ModelVersion], stages: Sequence[str] = ()
) -> list[pb.ModelVersion]:
    """MLflow's latest versions: the highest number in each stage (of `stages`, or of all)."""
    wanted = {canonical_stage(s) for s in stages} if stages else set(STAGE_NAME.values())
    best: dict[str, pb.ModelVersion] = {}
    for v in versions:
        stage = STAGE_NAME.get(v.stage, "None")
        if stage in wanted and (stage not in best or v.version > best[stage].version):
            best[stage] = v
    return sorted(best.values(), key=lambda v: v.version)


def canonical_stage(text: str) -> str:
    value = STAGE_ENUM.get(text.strip().lower())
    if value is None:
        raise InvalidArgument.field(
            "stage", f"invalid model version stage {text!r}; use None, Staging, Production or Archived"
        )
    return STAGE_NAME[value]


def refuse_reserved(tags: Mapping[str, str], field: str) -> None:
    for key in tags:
        if key in RESERVED_TAGS:
            raise InvalidArgument.field(field, f"tag {key!r} is kept by Modelog for the MLflow source")
