"""The registry's model decider: a registered model with all its versions, aliases and stage
transitions is one aggregate, one stream.

Why one aggregate: "an alias points at exactly one version", "at most N versions in Production",
"one open request per version" and "approving into Production archives the previous one in the same
decision" all span versions of one model. Deciding them on the model's whole state and appending with
its stream version makes each decision atomic; a concurrent writer conflicts and decides again.

The rules live in parts: `lifecycle` (the model itself), `versions` (versions and aliases),
`transitions` (stage requests and approvals) and `nameclaims` (the name claim), over `state` and the
input `checks`. This module joins the parts into one decider and re-exports their names, so that
`domain` stays the one import a service or a test needs.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventlog import Decider, DomainEvent, FailedPrecondition, NotFound

from .checks import (
    MAX_ALIASES,
    MAX_STREAM_ID,
    check_alias,
    check_id,
    check_model_name,
    model_name_stream_id,
    model_stream_id,
)
from .events import ModelRestored
from .lifecycle import (
    DeleteModel,
    DescribeModel,
    LifecycleCommand,
    RegisterModel,
    RenameModel,
    RestoreModel,
    SetModelTags,
    SetPolicy,
    decide_lifecycle,
    evolve_lifecycle,
    register,
)
from .nameclaims import name_claim_decider
from .state import Actor, ModelState, VersionState
from .transitions import (
    ApproveTransition,
    CancelTransition,
    CommentOnVersion,
    RejectTransition,
    RequestTransition,
    TransitionCommand,
    decide_transition,
    evolve_transition,
)
from .versions import (
    AnnotateVersion,
    CreateVersion,
    DeleteVersion,
    DeprecateVersion,
    RemoveAlias,
    SetAlias,
    VersionCommand,
    decide_version,
    evolve_version,
)

__all__ = [
    "MAX_ALIASES",
    "MAX_STREAM_ID",
    "Actor",
    "AnnotateVersion",
    "ApproveTransition",
    "CancelTransition",
    "CommentOnVersion",
    "CreateVersion",
    "DeleteModel",
    "DeleteVersion",
    "DeprecateVersion",
    "DescribeModel",
    "ModelCommand",
    "ModelState",
    "RegisterModel",
    "RejectTransition",
    "RemoveAlias",
    "RenameModel",
    "RequestTransition",
    "RestoreModel",
    "SetAlias",
    "SetModelTags",
    "SetPolicy",
    "VersionState",
    "check_alias",
    "check_id",
    "check_model_name",
    "decide",
    "evolve",
    "model_decider",
    "model_name_stream_id",
    "model_stream_id",
    "name_claim_decider",
]

ModelCommand = RegisterModel | RestoreModel | LifecycleCommand | VersionCommand | TransitionCommand


def decide(cmd: ModelCommand, state: ModelState) -> Sequence[DomainEvent]:
    if isinstance(cmd, RegisterModel):
        return register(cmd, state)
    if not state.exists:
        raise NotFound("the model does not exist")
    if isinstance(cmd, RestoreModel):
        if not state.deleted:
            raise FailedPrecondition(f"model {state.name!r} is not deleted; there is nothing to restore")
        return [ModelRestored()]
    if state.deleted:
        raise FailedPrecondition(f"model {state.name!r} is deleted; restore it before changing it")
    if isinstance(cmd, VersionCommand):
        return decide_version(cmd, state)
    if isinstance(cmd, TransitionCommand):
        return decide_transition(cmd, state)
    return decide_lifecycle(cmd, state)


def evolve(state: ModelState, e: DomainEvent) -> ModelState:
    # Each part changes the state for its own events only and passes the others through untouched.
    return evolve_transition(evolve_version(evolve_lifecycle(state, e), e), e)


model_decider: Decider[ModelCommand, ModelState] = Decider(ModelState(), decide, evolve)
