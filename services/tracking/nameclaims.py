"""Experiment-name claims: names are unique across experiments (eventlog.nameclaims), and a deleted
experiment keeps its name, as in MLflow."""

from __future__ import annotations

from eventlog.nameclaims import name_claims

from .checks import check_name
from .events import ExperimentNameClaimed, ExperimentNameReleased

name_claim_decider = name_claims(
    what="experiment",
    claimed=ExperimentNameClaimed,
    released=ExperimentNameReleased,
    holder_field="experiment_id",
    check=lambda name: check_name("name", name),
)
