"""Model-name claims. Names are unique across models, which no model stream can know: the service
claims the name in its own stream (`model_name_stream_id`) before registering or renaming a model, and
optimistic concurrency on that stream lets exactly one of two concurrent claims win. A deleted model
keeps its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventlog import AlreadyExists, Decider, DomainEvent, FailedPrecondition

from .checks import check_model_name
from .events import ModelNameClaimed, ModelNameReleased


@dataclass(frozen=True)
class ClaimModelName:
    name: str
    model_id: str


@dataclass(frozen=True)
class ReleaseModelName:
    name: str
    model_id: str


NameCommand = ClaimModelName | ReleaseModelName


@dataclass(frozen=True)
class NameClaimState:
    holder: str | None = None


def decide_name(cmd: NameCommand, state: NameClaimState) -> Sequence[DomainEvent]:
    if isinstance(cmd, ClaimModelName):
        check_model_name(cmd.name)
        if state.holder == cmd.model_id:
            return []  # a retried claim
        if state.holder is not None:
            raise AlreadyExists(f"a model named {cmd.name!r} already exists (id {state.holder})")
        return [ModelNameClaimed(name=cmd.name, model_id=cmd.model_id)]
    if state.holder is None:
        return []  # a retried release
    if state.holder != cmd.model_id:
        raise FailedPrecondition(
            f"model name {cmd.name!r} belongs to model {state.holder}, not {cmd.model_id}; "
            "only its holder may release it"
        )
    return [ModelNameReleased(name=cmd.name, model_id=cmd.model_id)]


def evolve_name(state: NameClaimState, event: DomainEvent) -> NameClaimState:
    if isinstance(event, ModelNameClaimed):
        return NameClaimState(holder=event.model_id)
    if isinstance(event, ModelNameReleased):
        return NameClaimState()
    return state


name_claim_decider: Decider[NameCommand, NameClaimState] = Decider(NameClaimState(), decide_name, evolve_name)
