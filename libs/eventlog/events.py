"""Domain events, their metadata, and the registry that decodes stored events (with upcasting)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eventlog.errors import InvalidArgument
from modelog.shared.hashchain import canonical_json

JsonDict = dict[str, Any]
_PRINTABLE = re.compile(r"^[\x21-\x7e]*\Z")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z")


class DomainEvent(BaseModel):
    """A fact that happened. `type` defaults to the class name; bump `schema_version` on shape change."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "type" not in cls.__dict__:
            cls.type = cls.__name__

    def payload_json(self) -> str:
        return canonical_json(self.model_dump(mode="json"))


class Origin(BaseModel):
    """Where an imported fact really happened: the source system, its id there, its time and person.

    The log's own recorded-at stays the real append time (the hash chain never claims the past);
    queries, history and as-of answers use `at_ms` instead (`RecordedEvent.occurred_at`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    source: str = Field(min_length=1, max_length=300)
    """Such as `mlflow:http://host:5000` or `neptune:/exports/acme`."""
    id: str = Field(default="", max_length=300)
    """What the source called the thing, such as an MLflow run id."""
    at_ms: int = Field(ge=0, le=253_402_300_799_999)
    """When it happened there: milliseconds since the epoch (at most the year 9999)."""
    by: str = Field(default="", max_length=200)
    """Who did it there (the importer's own identity is the event's `actor`)."""

    @field_validator("source", "id", "by")
    @classmethod
    def _no_controls(cls, v: str) -> str:
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in v):
            raise ValueError("must not contain control characters")
        return v


class Metadata(BaseModel):
    """Who and why: recorded with every event, covered by the hash chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    actor: str = Field(default="system", min_length=1, max_length=200)
    request_id: str | None = Field(default=None, max_length=128)
    correlation_id: str | None = Field(default=None, max_length=128)
    causation_id: str | None = Field(default=None, max_length=128)
    traceparent: str | None = None
    tracestate: str | None = Field(default=None, max_length=512)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)
    origin: Origin | None = None
    """Set on imported history only (absent from every other event, so their bytes are unchanged)."""

    @field_validator("request_id", "correlation_id", "causation_id", "idempotency_key")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        if v is not None and not _PRINTABLE.match(v):
            raise ValueError("must be printable ASCII without spaces")
        return v

    @field_validator("traceparent")
    @classmethod
    def _w3c(cls, v: str | None) -> str | None:
        if v is not None and not _TRACEPARENT.match(v):
            raise ValueError("must be a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>")
        return v

    @property
    def acted_by(self) -> str:
        """Who did it: the original person of imported history, else the actor."""
        return self.origin.by if self.origin is not None and self.origin.by else self.actor

    def to_json(self) -> str:
        return canonical_json(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def parse(cls, **fields: Any) -> Metadata:
        """Build from untrusted input, turning validation errors into INVALID_ARGUMENT."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(p) for p in first["loc"]) or "metadata"
            raise InvalidArgument.field(f"metadata.{name}", first["msg"]) from None


Upcaster = Callable[[JsonDict], JsonDict]
E = TypeVar("E", bound=type[DomainEvent])


class UnknownEventType(Exception):
    """A stored event whose type no registered class knows: a deployment error, not user input."""


class EventRegistry:
    """Maps (type, schema_version) to the current model, upcasting old versions step by step."""

    def __init__(self) -> None:
        self._classes: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: E) -> E:
        if cls.type in self._classes and self._classes[cls.type] is not cls:
            raise ValueError(f"event type {cls.type!r} registered twice")
        self._classes[cls.type] = cls
        return cls

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function turning the payload of version N into version N+1."""

        def deco(fn: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = fn
            return fn

        return deco

    def known(self, event_type: str) -> bool:
        return event_type in self._classes

    def decode(self, event_type: str, schema_version: int, payload: JsonDict) -> DomainEvent:
        cls = self._classes.get(event_type)
        if cls is None:
            raise UnknownEventType(f"no event class registered for type {event_type!r}")
        version = schema_version
        while version < cls.schema_version:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise UnknownEventType(f"no upcaster for {event_type} v{version} -> v{version + 1}")
            payload = step(payload)
            version += 1
        if version != cls.schema_version:
            raise UnknownEventType(
                f"{event_type} v{schema_version} is newer than this code knows (v{cls.schema_version})"
            )
        return cls.model_validate(payload)
