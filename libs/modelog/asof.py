"""Time travel from Python: a registered model as it stood at an instant.

    m = modelog.models.get("churn", as_of=datetime(2026, 3, 1, tzinfo=UTC))
    m.aliases["champion"].version, m.production_versions, m.version(3).stage_approved_by
    v = modelog.models.get("churn@champion", as_of=...)   # the version that held the alias then

A naive datetime is read as local time (as `datetime.astimezone` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.protobuf.timestamp_pb2 import Timestamp

from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog._time import when as _when
from modelog.errors import NotFound

if TYPE_CHECKING:
    from modelog.registry import Registry


def timestamp(at: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(at.astimezone(UTC))
    return out


@dataclass
class AliasAsOf:
    alias: str
    version: int
    set_by: str
    set_at: datetime | None


@dataclass
class VersionAsOf:
    model: str
    version: int
    stage: str
    status: str
    aliases: list[str]
    run_id: str
    artifact: str
    manifest_digest: str
    datasets: list[dict[str, str]]
    created_by: str
    created_at: datetime | None
    stage_request_id: str = ""
    stage_requested_by: str = ""
    stage_approved_by: list[str] = field(default_factory=list)
    stage_changed_by: str = ""
    stage_changed_at: datetime | None = None
    open_request_id: str = ""

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"


@dataclass
class ModelAsOf:
    model_id: str
    name: str
    as_of: datetime | None
    position: int
    """The registry log position of the last event folded."""
    last_event_at: datetime | None
    deleted: bool
    description: str
    aliases: dict[str, AliasAsOf]
    production_versions: list[int]
    versions: list[VersionAsOf]

    def version(self, ref: int | str) -> VersionAsOf:
        """By number, or by an alias it held at that instant."""
        number = self.aliases[ref].version if isinstance(ref, str) and ref in self.aliases else ref
        for v in self.versions:
            if v.version == number:
                return v
        raise NotFound(f"model {self.name!r} had no version or alias {ref!r} at {self.as_of}")

    @classmethod
    def of(cls, r: pb.GetModelAsOfResponse) -> ModelAsOf:
        from modelog.registry import STAGE_NAMES, STATUS_NAMES

        def version(v: pb.VersionAsOf) -> VersionAsOf:
            datasets: list[dict[str, Any]] = [
                {"name": d.name, "digest": d.digest, "source": d.source, "context": d.context}
                for d in v.datasets
            ]
            return VersionAsOf(
                model=r.name,
                version=v.version,
                stage=STAGE_NAMES.get(v.stage, "?"),
                status=STATUS_NAMES.get(v.status, "?"),
                aliases=list(v.aliases),
                run_id=v.run_id,
                artifact=f"{v.artifact_name}:v{v.artifact_version}",
                manifest_digest=v.manifest_digest,
                datasets=datasets,
                created_by=v.created_by,
                created_at=_when(v.created_at),
                stage_request_id=v.stage_request_id,
                stage_requested_by=v.stage_requested_by,
                stage_approved_by=list(v.stage_approved_by),
                stage_changed_by=v.stage_changed_by,
                stage_changed_at=_when(v.stage_changed_at),
                open_request_id=v.open_request_id,
            )

        return cls(
            model_id=r.model_id,
            name=r.name,
            as_of=_when(r.as_of),
            position=r.position,
            last_event_at=_when(r.last_event_at),
            deleted=r.deleted,
            description=r.description,
            aliases={a.alias: AliasAsOf(a.alias, a.version, a.set_by, _when(a.set_at)) for a in r.aliases},
            production_versions=list(r.production_versions),
            versions=[version(v) for v in r.versions],
        )


def model_as_of(registry: Registry, name: str, at: datetime) -> ModelAsOf:
    req = pb.GetModelAsOfRequest(name=name, as_of=timestamp(at))
    return ModelAsOf.of(registry.call("GetModelAsOf", req))


def get_as_of(registry: Registry, ref: str, at: datetime) -> ModelAsOf | VersionAsOf:
    """ "churn" -> the model; "churn/3" or "churn@champion" -> that version as it stood at `at`."""
    from modelog.registry import parse_model_ref

    parsed = parse_model_ref(ref)
    model = model_as_of(registry, parsed.model, at)
    if parsed.version:
        return model.version(parsed.version)
    if parsed.alias:
        if parsed.alias not in model.aliases:
            raise NotFound(f"model {parsed.model!r} had no alias {parsed.alias!r} at {at.isoformat()}")
        return model.version(parsed.alias)
    return model
