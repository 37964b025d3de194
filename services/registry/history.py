"""A model's stream as a timeline people can read: one sentence per event, with its actor."""

from __future__ import annotations

from eventlog import DomainEvent

from .events import (
    AliasRemoved,
    AliasSet,
    ModelDeleted,
    ModelDescribed,
    ModelRegistered,
    ModelRenamed,
    ModelRestored,
    ModelTagsSet,
    ModelVersionCreated,
    PolicySet,
    StagePolicy,
    TransitionApproved,
    TransitionCancelled,
    TransitionRejected,
    TransitionRequested,
    VersionAnnotated,
    VersionCommented,
    VersionDeleted,
    VersionDeprecated,
    VersionStageChanged,
)


def _quoted(text: str, limit: int = 200) -> str:
    if not text:
        return ""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return f": {short!r}"


def _stage(name: str) -> str:
    """MLflow's stage "None" is no stage at all; a sentence says so."""
    return "no stage" if name == "None" else name


def _stage_policy(stage: str, p: StagePolicy) -> str:
    who = "" if p.approvals_required == 0 else f" from {p.approver_role}s"
    own = ", self-approval allowed" if p.allow_self_approval else ""
    return f"{stage} needs {p.approvals_required} approval(s){who} from {'/'.join(p.from_stages)}{own}"


def version_of(e: DomainEvent) -> int:
    """The version an event is about; 0 for model-wide events."""
    value = getattr(e, "version", 0)
    return value if isinstance(value, int) else 0


def _model_summary(e: DomainEvent, actor: str) -> str | None:
    match e:
        case ModelRegistered(name=name):
            return f"{actor} registered model {name!r}"
        case ModelRenamed(name=name, previous_name=previous):
            return f"{actor} renamed the model from {previous!r} to {name!r}"
        case ModelDescribed():
            return f"{actor} changed the model's description"
        case ModelTagsSet(tags=tags, deleted_keys=gone):
            parts = [f"set {', '.join(f'{k}={v}' for k, v in tags.items())}"] if tags else []
            parts += [f"deleted {', '.join(gone)}"] if gone else []
            return f"{actor} {' and '.join(parts)} on the model's tags"
        case ModelDeleted():
            return f"{actor} deleted the model"
        case ModelRestored():
            return f"{actor} restored the model"
        case PolicySet(policy=p):
            stages = "; ".join(
                _stage_policy(s, p.for_stage(s)) for s in ("Staging", "Production", "Archived")
            )
            return f"{actor} set the policy: {stages}; at most {p.max_production_versions} in Production"
    return None


def _version_summary(e: DomainEvent, actor: str) -> str | None:
    match e:
        case ModelVersionCreated(version=n, run=run, artifact=a):
            return f"{actor} created version {n} from run {run.run_id} and artifact {a.name}:v{a.version}"
        case VersionAnnotated(version=n):
            return f"{actor} annotated version {n}"
        case VersionDeprecated(version=n, reason=reason):
            return f"{actor} deprecated version {n}{_quoted(reason)}"
        case VersionDeleted(version=n):
            return f"{actor} deleted version {n}"
        case AliasSet(alias=alias, version=n, previous=None):
            return f"{actor} pointed alias {alias!r} at version {n}"
        case AliasSet(alias=alias, version=n, previous=previous):
            return f"{actor} moved alias {alias!r} from version {previous} to version {n}"
        case AliasRemoved(alias=alias, version=n):
            return f"{actor} removed alias {alias!r} (it pointed at version {n})"
        case VersionCommented(version=n, comment=comment):
            return f"{actor} commented on version {n}{_quoted(comment)}"
    return None


def _transition_summary(e: DomainEvent, actor: str) -> str | None:
    match e:
        case TransitionRequested(version=n, to_stage=to, comment=comment, approvals_required=k):
            needs = "no approval" if k == 0 else f"{k} approval(s)"
            return f"{actor} requested {_stage(to)} for version {n} (needs {needs}){_quoted(comment)}"
        case TransitionApproved(version=n, request_id=rid, comment=comment):
            return f"{actor} approved request {rid} for version {n}{_quoted(comment)}"
        case TransitionRejected(version=n, request_id=rid, comment=comment):
            return f"{actor} rejected request {rid} for version {n}{_quoted(comment)}"
        case TransitionCancelled(version=n, request_id=rid, reason=reason):
            return f"{actor} cancelled request {rid} for version {n}{_quoted(reason)}"
        case VersionStageChanged(version=n, from_stage=a, to_stage=b, reason=reason):
            why = f" ({reason})" if reason else ""
            return f"version {n} moved from {_stage(a)} to {_stage(b)}{why}, on {actor}'s decision"
    return None


def summary(e: DomainEvent, actor: str) -> str:
    return (
        _model_summary(e, actor)
        or _version_summary(e, actor)
        or _transition_summary(e, actor)
        or f"{actor}: {e.type}"
    )
