"""Artifacts end to end through the SDK: dedup, diff, restore, path rules on commit and on download,
aliases, idempotent commits, and the views' rebuild."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest

import modelog.artifacts as art
from eventlog import Metadata, NewEvent
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog.errors import FailedPrecondition, InvalidArgument
from modelog.shared.artifacts.manifest import FORMAT
from modelog_platform.grpc_errors import status_details
from modelog_services.artifacts.events import ArtifactVersionCommitted
from modelog_services.artifacts.projections import ArtifactsView, BlobsView
from tests.contracts import assert_rebuild_equals_live
from tests.integration.test_artifacts_stack import ArtifactStack, put_blobs, read_tree, sha, stack, tree

pytestmark = pytest.mark.asyncio
__all__ = ["stack"]


def dataset(
    n: int = 20, changed: tuple[int, ...] = (), extra: dict[str, bytes] | None = None
) -> dict[str, bytes]:
    files = {f"part-{i:03d}.csv": (f"row,{i}\n" * (500 + i)).encode() for i in range(n)}
    files["nested/deep/readme.txt"] = b"about this dataset\n"
    for i in changed:
        files[f"part-{i:03d}.csv"] += b"changed\n"
    files.update(extra or {})
    return files


async def log(s: ArtifactStack, path: Path, **kw: object) -> art.ArtifactVersion:
    def run() -> art.ArtifactVersion:
        with s.connection() as conn:
            return art.log_artifacts(path, conn=conn, **kw)  # type: ignore[arg-type]

    return await asyncio.to_thread(run)


async def test_versions_share_blobs_diff_lists_changes_and_pull_restores_bytes(
    stack: ArtifactStack, tmp_path: Path
) -> None:
    v1_files = dataset()
    v2_files = dataset(changed=(3, 7), extra={"new/added.bin": os.urandom(3000)})
    del v2_files["part-019.csv"]
    work = tree(tmp_path / "data", v1_files)
    v1 = await log(stack, work, name="mnist", kind="dataset", message="first")
    assert (v1.version, v1.file_count, v1.created) == (1, len(v1_files), True)
    blobs_after_v1 = {b.digest for b in stack.blobs.blobs()}
    assert len(blobs_after_v1) == len({sha(d) for d in v1_files.values()}) + 1  # + the manifest

    for p in sorted(work.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    tree(work, v2_files)
    v2 = await log(stack, work, name="mnist", kind="dataset", message="second")
    assert (v2.version, v2.parent_version) == (2, 1)
    blobs_after_v2 = {b.digest for b in stack.blobs.blobs()}
    # Shared files are stored once: only the 3 new contents and the new manifest were added.
    assert len(blobs_after_v2 - blobs_after_v1) == 4
    stored = await stack.events("BlobStored")
    assert len(stored) == len(blobs_after_v2)

    diff = await stack.stub.DiffVersions(
        pb.DiffVersionsRequest(a=pb.VersionRef(name="mnist", version=1), b=pb.VersionRef(name="mnist")),
        metadata=stack.md,
    )
    assert [c.path for c in diff.added] == ["new/added.bin"]
    assert [c.path for c in diff.removed] == ["part-019.csv"]
    assert [c.path for c in diff.modified] == ["part-003.csv", "part-007.csv"]
    assert diff.modified[0].old_size == len(v1_files["part-003.csv"])
    assert diff.modified[0].new_size == len(v2_files["part-003.csv"])
    assert diff.added[0].new_size == 3000 and diff.removed[0].old_size == len(v1_files["part-019.csv"])
    assert diff.unchanged == len(v1_files) - 3

    def pull() -> None:
        with stack.connection() as conn:
            restored = tmp_path / "restored"
            art.get("mnist:latest", conn=conn).download(restored)
            assert read_tree(restored) == v2_files
            art.get("mnist:v1", conn=conn).download(restored, exact=True)

    await asyncio.to_thread(pull)
    assert read_tree(tmp_path / "restored") == v1_files
    assert not (tmp_path / "restored" / "new").exists()  # emptied directories go too


async def test_same_content_adds_no_version_and_kind_is_kept(stack: ArtifactStack, tmp_path: Path) -> None:
    work = tree(tmp_path / "m", {"model.pt": b"weights", "config.json": b"{}"})
    first = await log(stack, work, name="clf", kind="model", aliases=["staging"])
    again = await log(stack, work, name="clf", kind="model")
    assert (first.version, again.version, again.created) == (1, 1, False)
    assert sorted(first.aliases) == ["latest", "staging"]
    with pytest.raises(FailedPrecondition) as refused:
        await log(stack, tree(work, {"model.pt": b"other"}), name="clf", kind="dataset")
    assert "model" in refused.value.message


async def test_commit_with_a_missing_blob_is_refused_and_names_it(stack: ArtifactStack) -> None:
    entry = pb.ManifestEntry(path="a.bin", digest=sha(b"never uploaded"), size=14)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.stub.CommitVersion(pb.CommitVersionRequest(name="ds", entries=[entry]), metadata=stack.md)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'a.bin'" in (info.value.details() or "")
    assert status_details(info.value)["reason"] == "BLOBS_MISSING"
    assert await stack.events("ArtifactVersionCommitted") == []


BAD_PATHS = [
    ("/etc/passwd", "absolute"),
    ("../outside.txt", "'..'"),
    ("a/../../outside.txt", "'..'"),
    ("a//b.txt", "empty segment"),
    ("a/b/", "empty segment"),
    ("./a.txt", "'.' segment"),
    ("a\x00b.txt", "NUL"),
    ("dir\\file.txt", "backslash"),
    ("C:/Windows/x.txt", "drive letter"),
    ("line\nbreak.txt", "control character"),
]


@pytest.mark.parametrize(("path", "why"), BAD_PATHS, ids=[w for _, w in BAD_PATHS])
async def test_commit_refuses_each_unsafe_path(stack: ArtifactStack, path: str, why: str) -> None:
    await put_blobs(stack, [b"x"])
    entry = pb.ManifestEntry(path=path, digest=sha(b"x"), size=1)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.stub.CommitVersion(pb.CommitVersionRequest(name="ds", entries=[entry]), metadata=stack.md)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    if why == "NUL":  # refused for every string field before any handler: it names the field instead
        assert "entries[0].path" in details and why in details
    else:
        assert repr(path) in details and why in details
    assert await stack.events("ArtifactVersionCommitted") == []


@pytest.mark.parametrize(
    ("paths", "why"),
    [
        (["Data.csv", "data.csv"], "differ only in case"),
        (["caf\u00e9.txt", "cafe\u0301.txt"], "Unicode normalisation"),
        (["a", "a/b.txt"], "is a file"),
        (["A", "a/b.txt"], "is a file"),
        (["same.txt", "same.txt"], "twice"),
    ],
)
async def test_commit_refuses_paths_that_collide_on_disk(
    stack: ArtifactStack, paths: list[str], why: str
) -> None:
    await put_blobs(stack, [b"x"])
    entries = [pb.ManifestEntry(path=p, digest=sha(b"x"), size=1) for p in paths]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.stub.CommitVersion(pb.CommitVersionRequest(name="ds", entries=entries), metadata=stack.md)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert why in (info.value.details() or "")


async def _plant(stack: ArtifactStack, name: str, entries: list[list[object]]) -> None:
    """A version whose manifest no commit would accept, written past the API (a hostile or buggy server)."""
    from modelog.shared.hashchain import canonical_json

    await put_blobs(stack, [b"evil"])
    doc = canonical_json({"entries": entries, "format": FORMAT}).encode()
    digest, _ = stack.blobs.put(doc)
    event = ArtifactVersionCommitted(
        name=name, version=1, kind="dataset", manifest=digest, file_count=len(entries), total_size=4
    )
    await stack.platform.stores["artifacts"].append(
        f"artifact-{name}", 0, [NewEvent.of(event)], Metadata(actor="mallory")
    )


@pytest.mark.parametrize(("path", "why"), BAD_PATHS, ids=[w for _, w in BAD_PATHS])
async def test_download_refuses_each_unsafe_path_and_writes_nothing(
    stack: ArtifactStack, tmp_path: Path, path: str, why: str
) -> None:
    await _plant(stack, "evil", [["ok.txt", sha(b"evil"), 4, 420], [path, sha(b"evil"), 4, 420]])
    target = tmp_path / "sandbox" / "inside"

    def pull() -> None:
        with stack.connection() as conn:
            art.get("evil", conn=conn).download(target)

    with pytest.raises(InvalidArgument) as info:
        await asyncio.to_thread(pull)
    assert why in info.value.message
    assert not (tmp_path / "sandbox").exists() or not any((tmp_path / "sandbox").rglob("*.txt"))
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "sandbox" / "outside.txt").exists()


async def test_download_never_writes_through_a_symlink_in_the_target(
    stack: ArtifactStack, tmp_path: Path
) -> None:
    work = tree(tmp_path / "w", {"sub/file.txt": b"payload"})
    await log(stack, work, name="ds")
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "sub").symlink_to(outside)

    def pull() -> None:
        with stack.connection() as conn:
            art.get("ds", conn=conn).download(target)

    with pytest.raises(InvalidArgument) as info:
        await asyncio.to_thread(pull)
    assert "symlink" in info.value.message
    assert list(outside.iterdir()) == []


async def test_aliases_move_and_latest_follows_new_versions(stack: ArtifactStack, tmp_path: Path) -> None:
    work = tree(tmp_path / "d", {"a.txt": b"1"})
    await log(stack, work, name="ds")
    await log(stack, tree(work, {"a.txt": b"2"}), name="ds")
    set1 = await stack.stub.SetAlias(
        pb.SetAliasRequest(name="ds", alias="prod", version=1), metadata=stack.md
    )
    assert set1.previous_version == 0 and "prod" in set1.version.aliases
    await log(stack, tree(work, {"a.txt": b"3"}), name="ds")
    got = await stack.stub.GetVersion(
        pb.GetVersionRequest(ref=pb.VersionRef(name="ds", alias="prod")), metadata=stack.md
    )
    assert got.version.version == 1
    latest = await stack.stub.GetVersion(
        pb.GetVersionRequest(ref=pb.VersionRef(name="ds")), metadata=stack.md
    )
    assert latest.version.version == 3 and "latest" in latest.version.aliases
    moved = await stack.stub.SetAlias(
        pb.SetAliasRequest(name="ds", alias="prod", version=3), metadata=stack.md
    )
    assert moved.previous_version == 1
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.stub.SetAlias(pb.SetAliasRequest(name="ds", alias="latest", version=1), metadata=stack.md)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.stub.SetAlias(pb.SetAliasRequest(name="ds", alias="prod", version=9), metadata=stack.md)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    await stack.stub.RemoveAlias(pb.RemoveAliasRequest(name="ds", alias="prod"), metadata=stack.md)
    page = await stack.stub.ListVersions(pb.ListVersionsRequest(name="ds", page_size=2), metadata=stack.md)
    assert [v.version for v in page.versions] == [3, 2] and page.next_page_token
    rest = await stack.stub.ListVersions(
        pb.ListVersionsRequest(name="ds", page_size=2, page_token=page.next_page_token), metadata=stack.md
    )
    assert [v.version for v in rest.versions] == [1] and not rest.next_page_token
    assert all("prod" not in v.aliases for v in [*page.versions, *rest.versions])


async def test_a_retried_commit_is_not_duplicated(stack: ArtifactStack) -> None:
    await put_blobs(stack, [b"a", b"b"])
    md = [*stack.md, ("idempotency-key", "commit-1")]
    req = pb.CommitVersionRequest(name="ds", entries=[pb.ManifestEntry(path="a", digest=sha(b"a"), size=1)])
    first = await stack.stub.CommitVersion(req, metadata=md)
    other = pb.CommitVersionRequest(name="ds", entries=[pb.ManifestEntry(path="b", digest=sha(b"b"), size=1)])
    await stack.stub.CommitVersion(other, metadata=stack.md)
    retry = await stack.stub.CommitVersion(req, metadata=md)
    assert first.version.version == retry.version.version == 1 and retry.created
    assert len(await stack.events("ArtifactVersionCommitted")) == 2


async def test_open_streams_one_file_with_seeks(stack: ArtifactStack, tmp_path: Path) -> None:
    big = os.urandom(3 * (1 << 20) + 17)
    await log(stack, tree(tmp_path / "d", {"train.csv": b"a,b\n1,2\n", "big.bin": big}), name="ds")

    def read() -> None:
        with stack.connection() as conn:
            with art.open("ds:v1", "train.csv", "r", conn=conn) as fh:
                assert fh.read() == "a,b\n1,2\n"
            with art.open("ds@latest", "big.bin", conn=conn) as fh:
                assert fh.read() == big
                fh.seek(2 * (1 << 20) + 5)
                assert fh.read(10) == big[2 * (1 << 20) + 5 : 2 * (1 << 20) + 15]
            with pytest.raises(FileNotFoundError):
                art.open("ds", "nope.csv", conn=conn)

    await asyncio.to_thread(read)


async def test_rebuilt_views_equal_the_live_ones(stack: ArtifactStack, tmp_path: Path) -> None:
    work = tree(tmp_path / "d", dataset(5))
    await log(stack, work, name="ds", kind="dataset", tags={"source": "s3"}, run_id="run1")
    await log(stack, tree(work, {"x.txt": b"x"}), name="ds", aliases=["prod"])
    await stack.stub.TagVersion(
        pb.TagVersionRequest(ref=pb.VersionRef(name="ds", version=1), tags={"reviewed": "yes"}),
        metadata=stack.md,
    )
    await stack.stub.RemoveAlias(pb.RemoveAliasRequest(name="ds", alias="prod"), metadata=stack.md)
    await stack.stub.GarbageCollect(pb.GarbageCollectRequest(), metadata=stack.md)
    pool = stack.platform.pool
    for view in (ArtifactsView(), BlobsView()):
        await assert_rebuild_equals_live(pool, view, stack.platform.stores, swap=True)
