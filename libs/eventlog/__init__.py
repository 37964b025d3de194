"""Modelog's event store: append-only, gap-free, hash-chained logs in PostgreSQL."""

from eventlog.decider import Decider, Outcome, handle, load
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
from eventlog.events import DomainEvent, EventRegistry, Metadata, UnknownEventType, canonical_json
from eventlog.hashchain import GENESIS, ChainRow, ChainVerifier, VerifyReport
from eventlog.records import AppendResult, NewEvent, RecordedEvent
from eventlog.schema import create_log
from eventlog.store import EventStore, InlineHook

__all__ = [
    "GENESIS",
    "AlreadyExists",
    "AppendResult",
    "ChainRow",
    "ChainVerifier",
    "ConcurrencyConflict",
    "Decider",
    "DomainEvent",
    "EventRegistry",
    "EventStore",
    "FailedPrecondition",
    "FieldViolation",
    "IdempotencyKeyReused",
    "InlineHook",
    "InvalidArgument",
    "Metadata",
    "ModelogError",
    "NewEvent",
    "NotFound",
    "Outcome",
    "PermissionDenied",
    "RecordedEvent",
    "Unauthenticated",
    "Unavailable",
    "UnknownEventType",
    "VerifyReport",
    "canonical_json",
    "create_log",
    "handle",
    "load",
]
