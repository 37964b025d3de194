"""The SDK's local side, no server: walking a tree (symlinks), the hash cache, and a download that
cannot be steered outside its directory."""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import modelog.artifacts as art
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog.artifacts import tree as tree_module
from modelog.errors import InvalidArgument
from modelog.shared.artifacts.manifest import Entry, Manifest
from tests.integration.test_artifacts_stack import read_tree, tree


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Silent:
    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


class FakeStub:
    """Serves Download from a dict, as a (possibly hostile) server would."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def Download(self, request: pb.DownloadRequest) -> Iterator[pb.DownloadResponse]:
        for r in request.ranges:
            data = self.blobs[r.digest][r.offset :]
            yield pb.DownloadResponse(digest=r.digest, offset=r.offset, data=data, size=len(data), last=True)


def test_symlinks_inside_the_tree_are_followed(tmp_path: Path) -> None:
    root = tree(tmp_path / "t", {"real/a.txt": b"a", "b.txt": b"b"})
    (root / "alias.txt").symlink_to(root / "b.txt")
    (root / "linked").symlink_to(root / "real")
    assert [(f.path, f.size) for f in art.scan(root)] == [
        ("alias.txt", 1),
        ("b.txt", 1),
        ("linked/a.txt", 1),
        ("real/a.txt", 1),
    ]


@pytest.mark.parametrize("kind", ["file", "dir", "relative", "dangling", "loop"])
def test_symlinks_leaving_the_tree_dangling_or_looping_are_refused(tmp_path: Path, kind: str) -> None:
    root = tree(tmp_path / "t", {"sub/x.txt": b"x"})
    secret = tree(tmp_path / "secret", {"key": b"k"})
    link = root / "sub" / "link"
    target: Any = {
        "file": secret / "key",
        "dir": secret,
        "relative": Path("../../secret/key"),
        "dangling": root / "nothing",
        "loop": root,
    }[kind]
    link.symlink_to(target)
    with pytest.raises(InvalidArgument) as info:
        art.scan(root)
    assert "'sub/link'" in info.value.message


def test_unchanged_files_are_not_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tree(tmp_path / "t", {f"f{i}": os.urandom(100) for i in range(20)})
    old = 1_600_000_000
    for p in root.iterdir():
        os.utime(p, (old, old))  # long before the hash: not "racily clean"
    cache = art.HashCache(tmp_path / "cache.sqlite")
    hashed: list[str] = []
    real = tree_module._hash_file

    def counting(f: art.LocalFile, progress: art.Progress) -> None:
        hashed.append(f.path)
        real(f, progress)

    monkeypatch.setattr(tree_module, "_hash_file", counting)
    first = art.scan(root)
    art.hash_tree(first, cache, Silent(), stream_min=1 << 40)
    assert len(hashed) == 20
    (root / "f3").write_bytes(b"changed")
    second = art.scan(root)
    art.hash_tree(second, cache, Silent(), stream_min=1 << 40)
    assert hashed[20:] == ["f3"]
    assert {f.path: f.digest for f in second}["f3"] == sha(b"changed")


def test_a_file_hashed_just_after_it_changed_is_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tree(tmp_path / "t", {"fresh": b"1"})
    cache = art.HashCache(tmp_path / "cache.sqlite")
    art.hash_tree(art.scan(root), cache, Silent(), stream_min=1 << 40)
    again = art.scan(root)
    cache.lookup(again)
    assert again[0].digest is None  # modified within a second of hashing: not trusted yet


def materialize(root: Path, entries: list[Entry], blobs: dict[str, bytes], exact: bool = False) -> None:
    art.materialize(
        FakeStub(blobs),  # type: ignore[arg-type]
        Manifest(tuple(entries)),
        root,
        exact=exact,
        progress=Silent(),
        cache=art.HashCache(root.parent / "cache.sqlite"),
    )


def test_a_download_replaces_files_and_keeps_what_matches(tmp_path: Path) -> None:
    blobs = {sha(b"one"): b"one", sha(b"two"): b"two"}
    entries = [Entry("a/x", sha(b"one"), 3), Entry("b", sha(b"two"), 3, 0o755), Entry("c", sha(b"one"), 3)]
    target = tree(tmp_path / "out", {"a": b"a file where a directory goes", "stale.txt": b"old", "b": b"bad"})
    materialize(target, entries, blobs, exact=True)
    assert read_tree(target) == {"a/x": b"one", "b": b"two", "c": b"one"}
    assert (target / "b").stat().st_mode & 0o777 == 0o755


def test_a_download_never_follows_a_symlink_out_of_the_target(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "out"
    target.mkdir()
    (target / "escape").symlink_to(outside)
    (target / "file").symlink_to(outside / "victim")
    blobs = {sha(b"p"): b"p"}
    with pytest.raises(InvalidArgument, match="symlink"):
        materialize(target, [Entry("escape/x", sha(b"p"), 1)], blobs)
    materialize(target, [Entry("file", sha(b"p"), 1)], blobs)  # the link itself is replaced
    assert not (target / "file").is_symlink() and (target / "file").read_bytes() == b"p"
    assert list(outside.iterdir()) == []


def test_a_corrupt_download_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="corrupt"):
        materialize(tmp_path / "out", [Entry("a", sha(b"good"), 4)], {sha(b"good"): b"evil"})
    assert list((tmp_path / "out").iterdir()) == []


def test_the_crc_the_client_sends_is_zlibs() -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926  # ISO-HDLC check value, as the proto documents
