"""Artifact, blob and collection rules as given / when / then; references as people write them."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pytest

from eventlog import DomainEvent, FailedPrecondition, InvalidArgument, NotFound
from modelog.shared.artifacts.refs import Ref, check_alias, parse_ref
from modelog_services.artifacts.domain import (
    DIGESTS_PER_EVENT,
    ArtifactCommand,
    CollectBlobs,
    CommitVersion,
    RemoveAlias,
    SetAlias,
    TagVersion,
    collection_decider,
    initial_artifact,
)
from modelog_services.artifacts.events import (
    ArtifactAliasRemoved,
    ArtifactAliasSet,
    ArtifactTagged,
    ArtifactVersionCommitted,
    BlobsCollected,
)
from tests import gwt

M1, M2 = "1" * 64, "2" * 64
decider = initial_artifact("ds")


def committed(version: int, manifest: str, parent: int | None = None, kind: str = "dataset") -> DomainEvent:
    return ArtifactVersionCommitted(
        name="ds",
        version=version,
        kind=kind,
        manifest=manifest,
        file_count=1,
        total_size=1,
        parent=parent,  # type: ignore[arg-type]
    )


def decide(given: Sequence[DomainEvent], when: ArtifactCommand) -> list[DomainEvent]:
    return gwt.when(decider, given, when)


def commit(manifest: str, **kw: object) -> CommitVersion:
    fields: dict[str, object] = {
        "name": "ds",
        "kind": None,
        "manifest": manifest,
        "file_count": 1,
        "total_size": 1,
    }
    return CommitVersion(**{**fields, **kw})  # type: ignore[arg-type]


V1 = [committed(1, M1), ArtifactAliasSet(alias="latest", version=1)]


def test_the_first_commit_is_v1_and_latest_points_at_it() -> None:
    assert decide([], commit(M1, kind="dataset")) == [*V1]


def test_a_new_manifest_is_the_next_version_with_the_previous_as_parent_and_latest_moves() -> None:
    assert decide(V1, commit(M2, aliases=["prod"])) == [
        committed(2, M2, parent=1),
        ArtifactAliasSet(alias="latest", version=2, previous=1),
        ArtifactAliasSet(alias="prod", version=2),
    ]


def test_the_same_manifest_as_the_latest_adds_no_version() -> None:
    assert decide(V1, commit(M1)) == []
    assert decide(V1, commit(M1, tags={"k": "v"})) == [ArtifactTagged(version=1, tags={"k": "v"})]


def test_the_same_manifest_on_another_parent_is_a_new_version() -> None:
    given = [*V1, committed(2, M2, parent=1), ArtifactAliasSet(alias="latest", version=2, previous=1)]
    assert decide(given, commit(M1, parent=1))[0] == committed(3, M1, parent=1)


def test_an_artifact_keeps_its_kind() -> None:
    with pytest.raises(FailedPrecondition, match="dataset"):
        decide(V1, commit(M2, kind="model"))
    assert decide(V1, commit(M2))[0] == committed(2, M2, parent=1, kind="dataset")


def test_a_parent_must_exist() -> None:
    with pytest.raises(NotFound, match="ds:v7"):
        decide(V1, commit(M2, parent=7))


def test_an_alias_moves_and_says_where_from() -> None:
    given = [*V1, committed(2, M2, parent=1), ArtifactAliasSet(alias="prod", version=1)]
    assert decide(given, SetAlias("prod", 2)) == [ArtifactAliasSet(alias="prod", version=2, previous=1)]
    assert decide(given, SetAlias("prod", 1)) == []
    with pytest.raises(NotFound):
        decide(given, SetAlias("prod", 3))


def test_removing_an_alias_needs_one() -> None:
    given = [*V1, ArtifactAliasSet(alias="prod", version=1)]
    assert decide(given, RemoveAlias("prod")) == [ArtifactAliasRemoved(alias="prod", version=1)]
    with pytest.raises(NotFound, match="staging"):
        decide(given, RemoveAlias("staging"))


def test_tags_record_only_what_changes() -> None:
    given = [*V1, ArtifactTagged(version=1, tags={"a": "1"})]
    assert decide(given, TagVersion(1, {"a": "1", "b": "2"})) == [ArtifactTagged(version=1, tags={"b": "2"})]


def test_commands_on_a_missing_artifact_are_not_found() -> None:
    with pytest.raises(NotFound, match="'ds'"):
        decide([], SetAlias("prod", 1))


@pytest.mark.parametrize("alias", ["latest", "v3", "3", "Prod", "", "a b", "x" * 65])
def test_bad_aliases_are_refused(alias: str) -> None:
    with pytest.raises(InvalidArgument):
        check_alias(alias)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("ds", Ref("ds")),
        ("ds:latest", Ref("ds")),
        ("ds@latest", Ref("ds")),
        ("ds:v3", Ref("ds", version=3)),
        ("ds:3", Ref("ds", version=3)),
        ("ds/3", Ref("ds", version=3)),
        ("ds/latest", Ref("ds")),
        ("ds@prod", Ref("ds", alias="prod")),
        ("my.data-set_2:v10", Ref("my.data-set_2", version=10)),
    ],
)
def test_references_parse(text: str, ref: Ref) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current grammar warns about nothing
        assert parse_ref(text) == ref


@pytest.mark.parametrize(
    ("text", "ref", "better"),
    [("ds@3", Ref("ds", version=3), "ds:3"), ("ds:prod", Ref("ds", alias="prod"), "ds@prod")],
)
def test_the_old_artifact_spellings_still_work_with_a_warning_naming_the_new_one(
    text: str, ref: Ref, better: str
) -> None:
    with pytest.warns(DeprecationWarning, match=f"write '{better}'"):
        assert parse_ref(text) == ref


def test_a_reference_prints_in_the_grammar_it_parses_from() -> None:
    for ref in (Ref("ds", version=3), Ref("ds", alias="prod"), Ref("ds")):
        assert parse_ref(str(ref)) == ref


@pytest.mark.parametrize("text", ["", "ds:", "ds:v0", "../ds", "ds:Prod", ":v1", "a/b:v1"])
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_ref(text)


def test_a_large_collection_is_split_into_events_under_kafkas_message_limit() -> None:
    blobs = [(f"{i:064x}", 10) for i in range(DIGESTS_PER_EVENT * 2 + 1)]
    events = list(collection_decider.decide(CollectBlobs("run", blobs, 60), False))
    assert [len(e.digests) for e in events if isinstance(e, BlobsCollected)] == [DIGESTS_PER_EVENT] * 2 + [1]
    assert sum(e.bytes_freed for e in events if isinstance(e, BlobsCollected)) == 10 * len(blobs)
    assert all(len(e.payload_json()) < 200_000 for e in events)
    with pytest.raises(FailedPrecondition):
        collection_decider.decide(CollectBlobs("run", blobs, 60), collection_decider.fold(events))
