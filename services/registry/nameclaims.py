"""Model-name claims: names are unique across models (eventlog.nameclaims), and a deleted model keeps its
name."""

from __future__ import annotations

from eventlog.nameclaims import name_claims

from .checks import check_model_name
from .events import ModelNameClaimed, ModelNameReleased

name_claim_decider = name_claims(
    what="model",
    claimed=ModelNameClaimed,
    released=ModelNameReleased,
    holder_field="model_id",
    check=check_model_name,
)
