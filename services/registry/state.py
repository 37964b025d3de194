"""What the model decider knows of a model: its versions, aliases, transition requests and policy,
who acts on it, and the few questions every part of the decider asks of that state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from eventlog import DomainEvent, FailedPrecondition, NotFound

from .events import ModelPolicy, Stage, TargetStage, TransitionCancelled, VersionStatus

REQUIRES = {"viewer": "READ", "member": "EDIT", "approver": "APPROVE", "admin": "MANAGE"}
_ROLE_PERMS = {
    "viewer": ("READ",),
    "member": ("READ", "EDIT"),
    "admin": ("READ", "EDIT", "APPROVE", "MANAGE"),
}

RequestStatus = Literal["OPEN", "APPROVED", "REJECTED", "CANCELLED"]


@dataclass(frozen=True)
class Actor:
    """Who acts, with the permissions it holds on this model (found by the permission table)."""

    name: str
    perms: frozenset[str] = frozenset()

    @classmethod
    def of_roles(cls, name: str, *roles: str) -> Actor:
        """An actor holding what these roles give everywhere (viewer: READ, member: EDIT, admin: all)."""
        return cls(name, frozenset(p for r in roles for p in _ROLE_PERMS.get(r, ())))

    def holds(self, requirement: str) -> bool:
        """A policy's approver requirement: member = EDIT, approver = APPROVE, admin = MANAGE."""
        return REQUIRES[requirement] in self.perms


SYSTEM = Actor.of_roles("system", "admin")


@dataclass(frozen=True)
class VersionState:
    version: int
    run_id: str
    stage: Stage = "None"
    status: VersionStatus = "READY"
    entered_stage: int = 0
    """The model's stage-change counter when this version entered its stage (oldest first)."""
    open_request: str | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestState:
    request_id: str
    version: int
    from_stage: Stage
    to_stage: TargetStage
    by: str
    approvals_required: int
    approver_role: str
    allow_self_approval: bool
    approvals: tuple[str, ...] = ()
    status: RequestStatus = "OPEN"


@dataclass(frozen=True)
class ModelState:
    model_id: str = ""
    name: str = ""
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    deleted: bool = False
    policy: ModelPolicy = field(default_factory=ModelPolicy)
    versions: Mapping[int, VersionState] = field(default_factory=dict)
    latest_version: int = 0
    aliases: Mapping[str, int] = field(default_factory=dict)
    requests: Mapping[str, RequestState] = field(default_factory=dict)
    stage_changes: int = 0

    @property
    def exists(self) -> bool:
        return bool(self.model_id)

    def in_production(self) -> list[VersionState]:
        """Versions in Production, the one that entered first first."""
        found = [v for v in self.versions.values() if v.stage == "Production"]
        return sorted(found, key=lambda v: v.entered_stage)

    def aliases_of(self, version: int) -> list[str]:
        return sorted(a for a, v in self.aliases.items() if v == version)


def ref(state: ModelState, version: int) -> str:
    return f"version {version} of model {state.name!r}"


def live_version(state: ModelState, number: int) -> VersionState:
    """A version that exists and is not deleted."""
    v = state.versions.get(number)
    if v is None:
        latest = f"its versions are 1 to {state.latest_version}" if state.latest_version else "it has none"
        raise NotFound(f"model {state.name!r} has no version {number} ({latest})")
    if v.status == "DELETED":
        raise FailedPrecondition(f"{ref(state, number)} is deleted")
    return v


def changed_tags(
    current: Mapping[str, str], tags: Mapping[str, str], delete: Sequence[str], what: str
) -> tuple[dict[str, str], tuple[str, ...]]:
    for key in delete:
        if key not in current and key not in tags:
            raise NotFound(f"{what} has no tag {key!r}")
    changed = {k: v for k, v in tags.items() if current.get(k) != v}
    gone = tuple(dict.fromkeys(k for k in delete if k in current and k not in tags))
    return changed, gone


def cancel_open(state: ModelState, v: VersionState, by: str, reason: str) -> list[DomainEvent]:
    if v.open_request is None:
        return []
    return [TransitionCancelled(request_id=v.open_request, version=v.version, by=by, reason=reason)]


def with_version(state: ModelState, number: int, **changes: object) -> ModelState:
    v = replace(state.versions[number], **changes)  # type: ignore[arg-type]
    return replace(state, versions={**state.versions, number: v})
