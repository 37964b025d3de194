"""The registry's domain events: registered models, their versions, aliases, policies and transitions.

Streams: `model-<model id>` holds everything about one model and all its versions, because the rules
that matter (one version per alias, at most N versions in Production, one open request per version)
span versions: the model is the consistency boundary, and optimistic concurrency on its stream keeps
those rules true under concurrent writers. `model-name-<name>` streams claim names (unique across
models, see domain.py).

Actors live in each event's metadata. The few events whose *rules* depend on who acted (a requester
may not approve their own request; one approval per person) repeat the actor in the payload as `by`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from eventlog import DomainEvent, EventRegistry

registry = EventRegistry()

Stage = Literal["None", "Staging", "Production", "Archived"]
STAGES: tuple[Stage, ...] = ("None", "Staging", "Production", "Archived")
TargetStage = Literal["Staging", "Production", "Archived"]
TARGET_STAGES: tuple[TargetStage, ...] = ("Staging", "Production", "Archived")
VersionStatus = Literal["READY", "DEPRECATED", "DELETED"]
ApproverRole = Literal["member", "approver", "admin"]
"""Who may approve: holders of EDIT (member), of APPROVE (approver) or of MANAGE (admin) on the model."""

# ---------------------------------------------------------------- values inside events

# JSON has no NaN or infinities; a run's final loss may well be one. They travel as the strings
# protobuf's JSON mapping uses (the tracking service makes the same choice).
EncodedFloat = float | str
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_float(value: float) -> EncodedFloat:
    if math.isfinite(value):
        return float(value)
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def decode_float(value: EncodedFloat) -> float:
    return _SPECIAL[value] if isinstance(value, str) else value


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StagePolicy(_Value):
    approvals_required: int = Field(default=0, ge=0, le=10)
    approver_role: ApproverRole = "member"
    from_stages: tuple[Stage, ...]
    allow_self_approval: bool = False


class ModelPolicy(_Value):
    """What each stage takes. The defaults: Staging and Archived need no approval, Production needs one
    from a member other than the requester, and only one version is in Production at a time."""

    staging: StagePolicy = StagePolicy(from_stages=("None", "Archived"))
    production: StagePolicy = StagePolicy(approvals_required=1, from_stages=("Staging",))
    archived: StagePolicy = StagePolicy(from_stages=("None", "Staging", "Production"))
    max_production_versions: int = Field(default=1, ge=1, le=100)

    def for_stage(self, stage: TargetStage) -> StagePolicy:
        return {"Staging": self.staging, "Production": self.production, "Archived": self.archived}[stage]


class RunMetric(_Value):
    key: str
    last: EncodedFloat
    last_step: int
    min: EncodedFloat
    max: EncodedFloat

    @field_validator("last", "min", "max", mode="before")
    @classmethod
    def _encode(cls, v: Any) -> Any:
        return encode_float(v) if isinstance(v, float) else v


class RunDataset(_Value):
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    context: str = ""


class RunLineage(_Value):
    """The run as the tracking service described it when the version was created."""

    run_id: str
    experiment_id: str
    run_name: str
    status: str
    params: dict[str, str] = Field(default_factory=dict)
    truncated_params: tuple[str, ...] = ()
    metrics: tuple[RunMetric, ...] = ()
    datasets: tuple[RunDataset, ...] = ()


class ArtifactLineage(_Value):
    """The artifact version as the artifacts service described it when the version was created."""

    name: str
    version: int
    kind: str
    manifest_digest: str
    file_count: int = 0
    total_size: int = 0
    run_id: str | None = None


# ---------------------------------------------------------------- models


@registry.register
class ModelRegistered(DomainEvent):
    model_id: str
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    project: str = "default"
    """Events from before projects have none: they are in "default"."""


@registry.register
class ModelRenamed(DomainEvent):
    name: str
    previous_name: str


@registry.register
class ModelDescribed(DomainEvent):
    description: str


@registry.register
class ModelTagsSet(DomainEvent):
    tags: dict[str, str] = Field(default_factory=dict)
    deleted_keys: tuple[str, ...] = ()


@registry.register
class ModelDeleted(DomainEvent):
    pass


@registry.register
class ModelRestored(DomainEvent):
    pass


@registry.register
class PolicySet(DomainEvent):
    policy: ModelPolicy
    previous: ModelPolicy


@registry.register
class ModelNameClaimed(DomainEvent):
    name: str
    model_id: str


@registry.register
class ModelNameReleased(DomainEvent):
    name: str
    model_id: str


# ---------------------------------------------------------------- versions and aliases


@registry.register
class ModelVersionCreated(DomainEvent):
    version: int
    run: RunLineage
    artifact: ArtifactLineage
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    framework: str = ""
    signature: str = ""


@registry.register
class VersionAnnotated(DomainEvent):
    version: int
    description: str | None = None
    """None: unchanged."""
    tags: dict[str, str] = Field(default_factory=dict)
    deleted_tag_keys: tuple[str, ...] = ()


@registry.register
class VersionDeprecated(DomainEvent):
    version: int
    reason: str = ""


@registry.register
class VersionDeleted(DomainEvent):
    version: int


@registry.register
class AliasSet(DomainEvent):
    alias: str
    version: int
    previous: int | None = None


@registry.register
class AliasRemoved(DomainEvent):
    alias: str
    version: int


# ---------------------------------------------------------------- stage transitions


@registry.register
class TransitionRequested(DomainEvent):
    """A request, with the policy it is judged by (a later policy change does not move the goalposts
    of an open request)."""

    request_id: str
    version: int
    from_stage: Stage
    to_stage: TargetStage
    by: str
    comment: str = ""
    approvals_required: int
    approver_role: ApproverRole
    allow_self_approval: bool = False


@registry.register
class TransitionApproved(DomainEvent):
    request_id: str
    version: int
    by: str
    comment: str = ""


@registry.register
class TransitionRejected(DomainEvent):
    request_id: str
    version: int
    by: str
    comment: str = ""


@registry.register
class TransitionCancelled(DomainEvent):
    """Withdrawn by its requester or an admin, or closed by the registry because the version can no
    longer make that move (it was archived, deprecated, deleted, or its model deleted)."""

    request_id: str
    version: int
    by: str
    reason: str = ""


@registry.register
class VersionStageChanged(DomainEvent):
    version: int
    from_stage: Stage
    to_stage: TargetStage
    request_id: str | None = None
    reason: str = ""


@registry.register
class VersionCommented(DomainEvent):
    version: int
    comment: str
    request_id: str | None = None
