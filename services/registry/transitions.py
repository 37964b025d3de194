"""Stage transitions and their approvals: a request opens, approvers approve or reject it, its
requester cancels it, and enough approvals move the version (archiving the oldest Production versions
beyond the policy's limit in the same decision). Comments on a version live here too: they are the
review's conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from eventlog import (
    AlreadyExists,
    DomainEvent,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)

from .checks import MAX_COMMENT, check_id, check_text, invalid
from .events import (
    TARGET_STAGES,
    TargetStage,
    TransitionApproved,
    TransitionCancelled,
    TransitionRejected,
    TransitionRequested,
    VersionCommented,
    VersionStageChanged,
)
from .state import (
    REQUIRES,
    Actor,
    ModelState,
    RequestState,
    RequestStatus,
    VersionState,
    cancel_open,
    live_version,
    ref,
    with_version,
)


@dataclass(frozen=True)
class RequestTransition:
    request_id: str
    version: int
    to_stage: str
    actor: Actor
    comment: str = ""


@dataclass(frozen=True)
class ApproveTransition:
    version: int
    actor: Actor
    request_id: str | None = None
    comment: str = ""


@dataclass(frozen=True)
class RejectTransition:
    version: int
    actor: Actor
    request_id: str | None = None
    comment: str = ""


@dataclass(frozen=True)
class CancelTransition:
    version: int
    actor: Actor
    request_id: str | None = None
    comment: str = ""


@dataclass(frozen=True)
class CommentOnVersion:
    version: int
    comment: str
    request_id: str | None = None


TransitionCommand = (
    RequestTransition | ApproveTransition | RejectTransition | CancelTransition | CommentOnVersion
)


def _move(state: ModelState, v: VersionState, to: TargetStage, request_id: str, by: str) -> list[DomainEvent]:
    """The stage change a completed request makes, archiving the oldest Production versions first when
    the policy's limit would be exceeded (and closing their own open requests)."""
    events: list[DomainEvent] = []
    if to == "Production":
        current = [p for p in state.in_production() if p.version != v.version]
        excess = len(current) + 1 - state.policy.max_production_versions
        for old in current[: max(0, excess)]:
            why = f"version {old.version} was archived when version {v.version} entered Production"
            events += cancel_open(state, old, by, why)
            events.append(
                VersionStageChanged(
                    version=old.version,
                    from_stage="Production",
                    to_stage="Archived",
                    request_id=request_id,
                    reason=f"replaced by version {v.version}",
                )
            )
    events.append(
        VersionStageChanged(version=v.version, from_stage=v.stage, to_stage=to, request_id=request_id)
    )
    return events


def _target(value: str) -> TargetStage:
    for stage in TARGET_STAGES:
        if value == stage:
            return stage
    raise InvalidArgument.field(
        "stage", f"{value!r} is not a stage to move to; use {', '.join(TARGET_STAGES)}"
    )


def _request(cmd: RequestTransition, state: ModelState) -> list[DomainEvent]:
    check_id("request_id", cmd.request_id)
    to = _target(cmd.to_stage)
    check_text("comment", cmd.comment, MAX_COMMENT)
    v = live_version(state, cmd.version)
    which = ref(state, v.version)
    if cmd.request_id in state.requests:
        raise AlreadyExists(f"model {state.name!r} already has a transition request {cmd.request_id!r}")
    if v.stage == to:
        raise FailedPrecondition(f"{which} is already in {to}")
    if v.status == "DEPRECATED" and to != "Archived":
        raise FailedPrecondition(f"{which} is deprecated; it can only be archived")
    if v.open_request is not None:
        open_ = state.requests[v.open_request]
        raise FailedPrecondition(
            f"{which} already has an open request {open_.request_id!r} to {open_.to_stage} by {open_.by!r}; "
            "approve, reject or cancel it first"
        )
    policy = state.policy.for_stage(to)
    if v.stage not in policy.from_stages:
        raise FailedPrecondition(
            f"the policy of model {state.name!r} allows {to} only from {' or '.join(policy.from_stages)}; "
            f"{which} is in {v.stage}"
        )
    events: list[DomainEvent] = [
        TransitionRequested(
            request_id=cmd.request_id,
            version=v.version,
            from_stage=v.stage,
            to_stage=to,
            by=cmd.actor.name,
            comment=cmd.comment,
            approvals_required=policy.approvals_required,
            approver_role=policy.approver_role,
            allow_self_approval=policy.allow_self_approval,
        )
    ]
    if policy.approvals_required == 0:
        events += _move(state, v, to, cmd.request_id, cmd.actor.name)
    return events


def _open_request(state: ModelState, version: int, request_id: str | None) -> RequestState:
    v = live_version(state, version)
    if not request_id:
        if v.open_request is None:
            raise FailedPrecondition(f"{ref(state, version)} has no open transition request")
        return state.requests[v.open_request]
    req = state.requests.get(request_id)
    if req is None:
        raise NotFound(f"model {state.name!r} has no transition request {request_id!r}")
    if req.version != version:
        invalid("request_id", f"request {request_id!r} is about version {req.version}, not version {version}")
    if req.status != "OPEN":
        raise FailedPrecondition(
            f"request {request_id!r} for {ref(state, version)} is already {req.status.lower()}"
        )
    return req


def _check_reviewer(state: ModelState, req: RequestState, actor: Actor, verb: str) -> None:
    what = f"request {req.request_id!r} ({ref(state, req.version)} to {req.to_stage})"
    if not actor.holds(req.approver_role):
        need = REQUIRES[req.approver_role]
        raise PermissionDenied(
            f"{actor.name!r} may not {verb} {what}: the policy's approvers are {req.approver_role}s, "
            f"who hold {need} on the model ({actor.name!r} holds "
            f"{', '.join(sorted(actor.perms)) or 'nothing'} there)"
        )
    if actor.name == req.by and not req.allow_self_approval:
        raise PermissionDenied(
            f"{actor.name!r} opened {what} and may not {verb} it; another approver must "
            "(the requester may cancel it)"
        )


def _approve(cmd: ApproveTransition, state: ModelState) -> list[DomainEvent]:
    check_text("comment", cmd.comment, MAX_COMMENT)
    req = _open_request(state, cmd.version, cmd.request_id)
    _check_reviewer(state, req, cmd.actor, "approve")
    if cmd.actor.name in req.approvals:
        raise FailedPrecondition(f"{cmd.actor.name!r} already approved request {req.request_id!r}")
    events: list[DomainEvent] = [
        TransitionApproved(
            request_id=req.request_id, version=req.version, by=cmd.actor.name, comment=cmd.comment
        )
    ]
    if len(req.approvals) + 1 >= req.approvals_required:
        # An open request's version is still in the stage it was requested from: every other way a
        # version changes stage (or stops being movable) closes its open request in the same decision.
        events += _move(state, state.versions[req.version], req.to_stage, req.request_id, cmd.actor.name)
    return events


def _reject(cmd: RejectTransition, state: ModelState) -> list[DomainEvent]:
    check_text("comment", cmd.comment, MAX_COMMENT)
    req = _open_request(state, cmd.version, cmd.request_id)
    _check_reviewer(state, req, cmd.actor, "reject")
    return [
        TransitionRejected(
            request_id=req.request_id, version=req.version, by=cmd.actor.name, comment=cmd.comment
        )
    ]


def _cancel(cmd: CancelTransition, state: ModelState) -> list[DomainEvent]:
    check_text("comment", cmd.comment, MAX_COMMENT)
    req = _open_request(state, cmd.version, cmd.request_id)
    if cmd.actor.name != req.by and not cmd.actor.holds("admin"):
        raise PermissionDenied(
            f"{cmd.actor.name!r} may not cancel request {req.request_id!r}: only its requester "
            f"{req.by!r} or an admin may (reviewers reject)"
        )
    return [
        TransitionCancelled(
            request_id=req.request_id, version=req.version, by=cmd.actor.name, reason=cmd.comment
        )
    ]


def _comment(cmd: CommentOnVersion, state: ModelState) -> list[DomainEvent]:
    if not cmd.comment.strip():
        invalid("comment", "must not be empty")
    check_text("comment", cmd.comment, MAX_COMMENT)
    v = live_version(state, cmd.version)
    if cmd.request_id:
        req = state.requests.get(cmd.request_id)
        if req is None or req.version != v.version:
            raise NotFound(f"{ref(state, v.version)} has no transition request {cmd.request_id!r}")
    return [VersionCommented(version=v.version, comment=cmd.comment, request_id=cmd.request_id or None)]


def decide_transition(cmd: TransitionCommand, state: ModelState) -> list[DomainEvent]:
    match cmd:
        case RequestTransition():
            return _request(cmd, state)
        case ApproveTransition():
            return _approve(cmd, state)
        case RejectTransition():
            return _reject(cmd, state)
        case CancelTransition():
            return _cancel(cmd, state)
        case CommentOnVersion():
            return _comment(cmd, state)
    raise TypeError(f"not a transition command: {cmd!r}")


def _with_request(state: ModelState, request_id: str, **changes: object) -> ModelState:
    r = replace(state.requests[request_id], **changes)  # type: ignore[arg-type]
    return replace(state, requests={**state.requests, request_id: r})


def _close(state: ModelState, request_id: str, status: RequestStatus) -> ModelState:
    req = state.requests[request_id]
    state = _with_request(state, request_id, status=status)
    if state.versions[req.version].open_request == request_id:
        state = with_version(state, req.version, open_request=None)
    return state


def evolve_transition(state: ModelState, e: DomainEvent) -> ModelState:
    """A transition request's events and the stage changes; the others leave the state as it is."""
    match e:
        case TransitionRequested():
            req = RequestState(
                request_id=e.request_id,
                version=e.version,
                from_stage=e.from_stage,
                to_stage=e.to_stage,
                by=e.by,
                approvals_required=e.approvals_required,
                approver_role=e.approver_role,
                allow_self_approval=e.allow_self_approval,
            )
            state = replace(state, requests={**state.requests, e.request_id: req})
            return with_version(state, e.version, open_request=e.request_id)
        case TransitionApproved(request_id=rid, by=by):
            return _with_request(state, rid, approvals=(*state.requests[rid].approvals, by))
        case TransitionRejected(request_id=rid):
            return _close(state, rid, "REJECTED")
        case TransitionCancelled(request_id=rid):
            return _close(state, rid, "CANCELLED")
        case VersionStageChanged(version=n, to_stage=to, request_id=rid):
            count = state.stage_changes + 1
            state = with_version(replace(state, stage_changes=count), n, stage=to, entered_stage=count)
            if rid is not None and rid in state.requests and state.requests[rid].version == n:
                state = _close(state, rid, "APPROVED")
            return state
    return state
