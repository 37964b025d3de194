"""The artifacts service's rules as deciders: artifacts (versions, aliases, tags), blobs, and garbage
collections. Names, aliases and references (modelog.shared.artifacts.refs) and path and manifest
rules (modelog.shared.artifacts.manifest) are shared with the SDK.

A version is numbered by its artifact's stream, so two concurrent commits of one artifact get v3 and
v4 (optimistic concurrency re-decides the loser). `latest` is an alias like any other, moved by the
decider on every new version and never by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NoReturn

from eventlog import Decider, DomainEvent, FailedPrecondition, InvalidArgument, NotFound
from modelog.shared.artifacts.refs import LATEST

from .events import (
    KINDS,
    ArtifactAliasRemoved,
    ArtifactAliasSet,
    ArtifactTagged,
    ArtifactVersionCommitted,
    BlobsCollected,
    Kind,
)

MAX_MESSAGE = 10_000
MAX_TAGS = 100
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 5_000
MAX_ALIASES = 20
DIGESTS_PER_EVENT = 2_000
"""A collection of many blobs is split so no event nears a Kafka message's 1 MB limit."""

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_TAG_KEY = re.compile(r"^[\w.\-/: ]+\Z")


def _invalid(name: str, why: str) -> NoReturn:
    raise InvalidArgument.field(name, why)


def check_kind(value: str, field_name: str = "kind") -> Kind | None:
    """None for empty (the artifact's kind, or `other` for a new one)."""
    if not value:
        return None
    for kind in KINDS:
        if value == kind:
            return kind
    _invalid(field_name, f"{value!r} is not a kind; kinds are {', '.join(KINDS)}")


def check_run_id(value: str, field_name: str = "run_id") -> str | None:
    if not value:
        return None
    if not _RUN_ID.match(value):
        _invalid(field_name, f"{value!r} is not a run id")
    return value


def check_message(value: str, field_name: str = "message") -> str:
    if len(value) > MAX_MESSAGE:
        _invalid(field_name, f"is {len(value)} characters long; the limit is {MAX_MESSAGE}")
    return value


def check_tags(tags: Mapping[str, str], field_name: str = "tags") -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        _invalid(field_name, f"{len(tags)} tags; the limit is {MAX_TAGS}")
    for key, value in tags.items():
        if not key or len(key) > MAX_TAG_KEY or not _TAG_KEY.match(key):
            _invalid(
                f"{field_name}[{key!r}]", f"a key is 1-{MAX_TAG_KEY} of letters, digits, _ - . / : space"
            )
        if len(value) > MAX_TAG_VALUE:
            _invalid(f"{field_name}[{key!r}]", f"the value is longer than {MAX_TAG_VALUE} characters")
    return dict(tags)


def artifact_stream_id(name: str) -> str:
    return f"artifact-{name}"


def blob_stream_id(digest: str) -> str:
    return f"blob-{digest}"


def gc_stream_id(run_id: str) -> str:
    return f"gc-{run_id}"


# ---------------------------------------------------------------- artifacts


@dataclass(frozen=True)
class CommitVersion:
    name: str
    kind: Kind | None
    manifest: str
    file_count: int
    total_size: int
    message: str = ""
    run_id: str | None = None
    parent: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: Sequence[str] = ()
    project: str | None = None
    """None: the artifact's (default for a new one)."""


@dataclass(frozen=True)
class SetAlias:
    alias: str
    version: int


@dataclass(frozen=True)
class RemoveAlias:
    alias: str


@dataclass(frozen=True)
class TagVersion:
    version: int
    tags: Mapping[str, str]


ArtifactCommand = CommitVersion | SetAlias | RemoveAlias | TagVersion


@dataclass(frozen=True)
class ArtifactState:
    name: str = ""
    kind: Kind | None = None
    project: str | None = None
    manifests: tuple[str, ...] = ()
    """Manifest digest of v1, v2, ..."""
    aliases: Mapping[str, int] = field(default_factory=dict)
    tags: Mapping[int, Mapping[str, str]] = field(default_factory=dict)

    @property
    def latest(self) -> int:
        return len(self.manifests)

    def require_version(self, version: int, field_name: str = "version") -> int:
        if not 1 <= version <= self.latest:
            if not self.latest:
                raise NotFound(f"artifact {self.name or '?'!r} has no versions")
            raise NotFound(f"{self.name}:v{version} does not exist; the latest version is v{self.latest}")
        return version


def _alias_events(state: ArtifactState, aliases: Sequence[str], version: int) -> list[DomainEvent]:
    out: list[DomainEvent] = []
    for alias in dict.fromkeys(aliases):
        previous = state.aliases.get(alias)
        if previous != version:
            out.append(ArtifactAliasSet(alias=alias, version=version, previous=previous))
    return out


def _tag_events(state: ArtifactState, tags: Mapping[str, str], version: int) -> list[DomainEvent]:
    current = state.tags.get(version, {})
    changed = {k: v for k, v in tags.items() if current.get(k) != v}
    return [ArtifactTagged(version=version, tags=changed)] if changed else []


def decide_artifact(cmd: ArtifactCommand, state: ArtifactState) -> Sequence[DomainEvent]:
    if isinstance(cmd, CommitVersion):
        return _commit(cmd, state)
    if not state.latest:
        raise NotFound(f"no artifact named {state.name or '?'!r}")
    if isinstance(cmd, SetAlias):
        return _alias_events(state, [cmd.alias], state.require_version(cmd.version))
    if isinstance(cmd, RemoveAlias):
        if cmd.alias not in state.aliases:
            raise NotFound(f"artifact {state.name!r} has no alias {cmd.alias!r}")
        return [ArtifactAliasRemoved(alias=cmd.alias, version=state.aliases[cmd.alias])]
    return _tag_events(state, cmd.tags, state.require_version(cmd.version))


def _commit(cmd: CommitVersion, state: ArtifactState) -> list[DomainEvent]:
    if state.kind and cmd.kind and cmd.kind != state.kind:
        raise FailedPrecondition(
            f"artifact {cmd.name!r} holds {state.kind} versions; a {cmd.kind} cannot be committed to it "
            "(use another name)"
        )
    if state.project and cmd.project and cmd.project != state.project:
        raise FailedPrecondition(
            f"artifact {cmd.name!r} belongs to project {state.project!r}; a version cannot be committed to "
            f"it in project {cmd.project!r} (use another name)"
        )
    if cmd.parent is not None:
        state.require_version(cmd.parent, "parent_version")
    latest = state.latest
    if latest and state.manifests[-1] == cmd.manifest and cmd.parent in (None, latest):
        # Same content as the latest version: nothing new happened (DVC and W&B behave alike).
        return [*_tag_events(state, cmd.tags, latest), *_alias_events(state, cmd.aliases, latest)]
    version = latest + 1
    committed = ArtifactVersionCommitted(
        name=cmd.name,
        version=version,
        kind=cmd.kind or state.kind or "other",
        manifest=cmd.manifest,
        file_count=cmd.file_count,
        total_size=cmd.total_size,
        message=cmd.message,
        run_id=cmd.run_id,
        parent=cmd.parent if cmd.parent is not None else (latest or None),
        tags=dict(cmd.tags),
        project=state.project or cmd.project or "default",
    )
    return [committed, *_alias_events(state, [LATEST, *cmd.aliases], version)]


def evolve_artifact(state: ArtifactState, event: DomainEvent) -> ArtifactState:
    if isinstance(event, ArtifactVersionCommitted):
        tags = {**state.tags, event.version: dict(event.tags)} if event.tags else state.tags
        return replace(
            state,
            name=event.name,
            kind=event.kind,
            project=event.project,
            manifests=(*state.manifests, event.manifest),
            tags=tags,
        )
    if isinstance(event, ArtifactAliasSet):
        return replace(state, aliases={**state.aliases, event.alias: event.version})
    if isinstance(event, ArtifactAliasRemoved):
        return replace(state, aliases={k: v for k, v in state.aliases.items() if k != event.alias})
    if isinstance(event, ArtifactTagged):
        merged = {**state.tags.get(event.version, {}), **event.tags}
        return replace(state, tags={**state.tags, event.version: merged})
    return state


artifact_decider: Decider[ArtifactCommand, ArtifactState] = Decider(
    ArtifactState(), decide_artifact, evolve_artifact
)


def initial_artifact(name: str) -> Decider[ArtifactCommand, ArtifactState]:
    """The decider with the artifact's name in its initial state (for messages about a new stream)."""
    return Decider(ArtifactState(name=name), decide_artifact, evolve_artifact)


# ---------------------------------------------------------------- blobs and collections
# BlobStored has no decider: nothing can refuse it. It records a fact the blob store established (bytes
# verified against their digest and linked under it), appended by service.BlobRecorder.


@dataclass(frozen=True)
class CollectBlobs:
    run_id: str
    blobs: Sequence[tuple[str, int]]
    """(digest, size) of each blob to record as collected."""
    grace_seconds: int


def decide_collection(cmd: CollectBlobs, state: bool) -> Sequence[DomainEvent]:
    if state:
        raise FailedPrecondition(f"garbage collection {cmd.run_id} is already recorded")
    out: list[DomainEvent] = []
    for i in range(0, len(cmd.blobs), DIGESTS_PER_EVENT):
        part = cmd.blobs[i : i + DIGESTS_PER_EVENT]
        out.append(
            BlobsCollected(
                run_id=cmd.run_id,
                digests=tuple(d for d, _ in part),
                bytes_freed=sum(s for _, s in part),
                grace_seconds=cmd.grace_seconds,
            )
        )
    return out


collection_decider: Decider[CollectBlobs, bool] = Decider(
    False, decide_collection, lambda state, event: state or isinstance(event, BlobsCollected)
)
