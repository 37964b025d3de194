"""Experiment-name claims. Experiment names are unique, which no single experiment stream can know: the
service claims the name in its own stream (`experiment_name_stream_id`) before creating or renaming an
experiment and releases the old one after a rename; optimistic concurrency on that stream makes two
concurrent claims of one name end with exactly one winner. A deleted experiment keeps its name, as in
MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventlog import AlreadyExists, Decider, DomainEvent, FailedPrecondition

from .checks import check_name
from .events import ExperimentNameClaimed, ExperimentNameReleased


@dataclass(frozen=True)
class ClaimExperimentName:
    name: str
    experiment_id: str


@dataclass(frozen=True)
class ReleaseExperimentName:
    name: str
    experiment_id: str


NameCommand = ClaimExperimentName | ReleaseExperimentName


@dataclass(frozen=True)
class NameClaimState:
    holder: str | None = None


def decide_name(cmd: NameCommand, state: NameClaimState) -> Sequence[DomainEvent]:
    if isinstance(cmd, ClaimExperimentName):
        check_name("name", cmd.name)
        if state.holder == cmd.experiment_id:
            return []  # a retried claim
        if state.holder is not None:
            raise AlreadyExists(f"an experiment named {cmd.name!r} already exists (id {state.holder!r})")
        return [ExperimentNameClaimed(name=cmd.name, experiment_id=cmd.experiment_id)]
    if state.holder is None:
        return []  # a retried release
    if state.holder != cmd.experiment_id:
        raise FailedPrecondition(
            f"experiment name {cmd.name!r} belongs to experiment {state.holder!r}, "
            f"not {cmd.experiment_id!r}; only its holder may release it"
        )
    return [ExperimentNameReleased(name=cmd.name, experiment_id=cmd.experiment_id)]


def evolve_name(state: NameClaimState, event: DomainEvent) -> NameClaimState:
    if isinstance(event, ExperimentNameClaimed):
        return NameClaimState(holder=event.experiment_id)
    if isinstance(event, ExperimentNameReleased):
        return NameClaimState()
    return state


name_claim_decider: Decider[NameCommand, NameClaimState] = Decider(NameClaimState(), decide_name, evolve_name)
