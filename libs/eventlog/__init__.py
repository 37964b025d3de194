"""Modelog's event store: append-only, gap-free, hash-chained logs in PostgreSQL.

Names are imported on first use (PEP 562): a process that needs only the errors (an ingest worker)
does not load asyncpg, pydantic and the rest to start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventlog.commandpath import CommandPath, Executed
    from eventlog.decider import Decider
    from eventlog.errors import (
        AlreadyExists,
        ConcurrencyConflict,
        FailedPrecondition,
        FieldViolation,
        IdempotencyKeyReused,
        InvalidArgument,
        ModelogError,
        NotFound,
        PermissionDenied,
        Unauthenticated,
        Unavailable,
    )
    from eventlog.events import DomainEvent, EventRegistry, Metadata, UnknownEventType
    from eventlog.records import AppendResult, NewEvent, RecordedEvent
    from eventlog.schema import create_log
    from eventlog.store import EventStore, InlineHook
    from modelog.shared.hashchain import GENESIS, ChainRow, ChainVerifier, VerifyReport, canonical_json

_WHERE = {
    "AlreadyExists": "eventlog.errors",
    "AppendResult": "eventlog.records",
    "ChainRow": "modelog.shared.hashchain",
    "ChainVerifier": "modelog.shared.hashchain",
    "CommandPath": "eventlog.commandpath",
    "ConcurrencyConflict": "eventlog.errors",
    "Decider": "eventlog.decider",
    "DomainEvent": "eventlog.events",
    "EventRegistry": "eventlog.events",
    "EventStore": "eventlog.store",
    "Executed": "eventlog.commandpath",
    "FailedPrecondition": "eventlog.errors",
    "FieldViolation": "eventlog.errors",
    "GENESIS": "modelog.shared.hashchain",
    "IdempotencyKeyReused": "eventlog.errors",
    "InlineHook": "eventlog.store",
    "InvalidArgument": "eventlog.errors",
    "Metadata": "eventlog.events",
    "ModelogError": "eventlog.errors",
    "NewEvent": "eventlog.records",
    "NotFound": "eventlog.errors",
    "PermissionDenied": "eventlog.errors",
    "RecordedEvent": "eventlog.records",
    "Unauthenticated": "eventlog.errors",
    "Unavailable": "eventlog.errors",
    "UnknownEventType": "eventlog.events",
    "VerifyReport": "modelog.shared.hashchain",
    "canonical_json": "modelog.shared.hashchain",
    "create_log": "eventlog.schema",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'eventlog' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "GENESIS",
    "AlreadyExists",
    "AppendResult",
    "ChainRow",
    "ChainVerifier",
    "CommandPath",
    "ConcurrencyConflict",
    "Decider",
    "DomainEvent",
    "EventRegistry",
    "EventStore",
    "Executed",
    "FailedPrecondition",
    "FieldViolation",
    "IdempotencyKeyReused",
    "InlineHook",
    "InvalidArgument",
    "Metadata",
    "ModelogError",
    "NewEvent",
    "NotFound",
    "PermissionDenied",
    "RecordedEvent",
    "Unauthenticated",
    "Unavailable",
    "UnknownEventType",
    "VerifyReport",
    "canonical_json",
    "create_log",
]
