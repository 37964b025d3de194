"""The one given/when/then helper of the domain tests: given the events a stream holds, when a
command arrives, then these events (or this refusal). Pure: no store, no service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventlog import Decider, DomainEvent


def when(decider: Decider[Any, Any], given: Sequence[DomainEvent], command: Any) -> list[DomainEvent]:
    """What `decider` decides for `command` on the state `given` folds to."""
    return list(decider.decide(command, decider.fold(given)))
