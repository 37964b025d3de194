"""Same-host transfers: a client on the server's host (it can read the store's proof file) has the
server copy its files by path (IngestLocal) and copies blobs out of the store itself; any other client
streams. Both paths give the same bytes and the same manifest; a wrong proof is refused; a blob
damaged in the store is caught on a local pull."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

import modelog.artifacts as art
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog.artifacts import downloading as download_module
from modelog.artifacts import samehost
from modelog.artifacts import uploading as upload_module
from modelog.errors import FailedPrecondition
from modelog.shared.artifacts import localcopy, seal
from modelog_services.artifacts.blobstore import FileBlobStore
from tests.integration.test_artifacts_stack import ArtifactStack, read_tree, sha, stack, tree

__all__ = ["stack"]

BIG = localcopy.BUFFER * localcopy.BUFFERS * 3 + 12_345  # past the one-thread size, ragged end
"""Larger than the in-memory limits and not a whole number of copy steps."""


def files() -> dict[str, bytes]:
    out = {f"small/part-{i:02d}.bin": os.urandom(1000 + i) for i in range(30)}
    out["big.bin"] = os.urandom(BIG)
    out["empty.txt"] = b""
    out["copy/of-part-00.bin"] = out["small/part-00.bin"]  # one blob, two paths
    return out


class Calls:
    """Counts the streaming transfers the SDK makes (its Upload streams and Download calls)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.uploads = self.downloads = 0
        upload_init = upload_module._UploadStream.__init__
        fetch = download_module._fetch

        def counted_init(stream: Any, *a: Any, **kw: Any) -> None:
            self.uploads += 1
            upload_init(stream, *a, **kw)

        def counted_fetch(*a: Any, **kw: Any) -> None:
            self.downloads += 1
            fetch(*a, **kw)

        monkeypatch.setattr(upload_module._UploadStream, "__init__", counted_init)
        monkeypatch.setattr(download_module, "_fetch", counted_fetch)


async def sdk(s: ArtifactStack, fn: Callable[[Any], Any]) -> Any:
    def run() -> Any:
        with s.connection() as conn:
            return fn(conn)

    return await asyncio.to_thread(run)


async def test_a_same_host_client_moves_files_by_path_and_streams_nothing(
    stack: ArtifactStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    data = files()
    src = tree(tmp_path / "src", data)
    v = await sdk(stack, lambda c: art.log_artifacts(src, name="ds", conn=c))
    assert v.file_count == len(data)
    await sdk(stack, lambda c: art.get("ds", conn=c).download(tmp_path / "out"))
    assert read_tree(tmp_path / "out") == data
    assert (calls.uploads, calls.downloads) == (0, 0)
    # Stored as Upload would: every distinct content (and the manifest) once, each with its event.
    assert {b.digest for b in stack.blobs.blobs()} == {sha(d) for d in data.values()} | {v.manifest_digest}
    assert len(await stack.events("BlobStored")) == len(set(data.values())) + 1


async def test_streamed_and_local_transfers_give_the_same_bytes_and_manifest(
    stack: ArtifactStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    data = files()
    src = tree(tmp_path / "src", data)
    streamed = await sdk(stack, lambda c: art.log_artifacts(src, name="s", conn=c, local=False))
    assert calls.uploads > 0
    for path in ("small/part-03.bin", "big.bin"):  # new contents: the local path stores these two
        (src / path).write_bytes(os.urandom(len(data[path])))
        data[path] = (src / path).read_bytes()
    uploads = calls.uploads
    local = await sdk(stack, lambda c: art.log_artifacts(src, name="l", conn=c))
    assert calls.uploads == uploads
    again = await sdk(stack, lambda c: art.log_artifacts(src, name="s2", conn=c, local=False))
    assert again.manifest_digest == local.manifest_digest != streamed.manifest_digest
    await sdk(stack, lambda c: art.get("l", conn=c).download(tmp_path / "by-copy"))
    assert calls.downloads == 0
    await sdk(stack, lambda c: art.get("l", conn=c).download(tmp_path / "by-stream", local=False))
    assert calls.downloads > 0
    assert read_tree(tmp_path / "by-copy") == read_tree(tmp_path / "by-stream") == data


async def test_a_client_that_cannot_read_the_servers_proof_streams(
    stack: ArtifactStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a client on another host finds at that path: some other file (or none).
    proof_path = stack.home / "blobs" / "local-proof"
    proof_path.write_bytes(b"not the server's secret")
    calls = Calls(monkeypatch)
    data = files()
    src = tree(tmp_path / "src", data)
    assert await sdk(stack, lambda c: art.local_store(art.stub(c))) is None
    await sdk(stack, lambda c: art.log_artifacts(src, name="ds", conn=c))
    await sdk(stack, lambda c: art.get("ds", conn=c).download(tmp_path / "out"))
    assert calls.uploads > 0 and calls.downloads > 0
    assert read_tree(tmp_path / "out") == data
    proof_path.unlink()
    assert await sdk(stack, lambda c: art.local_store(art.stub(c))) is None


async def test_ingest_refuses_a_wrong_proof_and_stores_nothing(stack: ArtifactStack, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"a file only the server's user may read")
    request = pb.IngestLocalRequest(proof=b"guess", files=[pb.LocalFile(path=str(secret))])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.stub.IngestLocal(request, metadata=stack.md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "proof" in (err.value.details() or "")
    assert list(stack.blobs.blobs()) == [] and await stack.events() == []


async def test_ingest_reports_each_file_it_cannot_take_and_stores_the_rest(
    stack: ArtifactStack, tmp_path: Path
) -> None:
    good = tmp_path / "good.bin"
    good.write_bytes(b"good bytes")
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"not what the client thinks")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    store = await sdk(stack, lambda c: art.local_store(art.stub(c)))
    assert store is not None
    request = pb.IngestLocalRequest(
        proof=store.proof,
        files=[
            pb.LocalFile(path=str(good)),
            pb.LocalFile(path=str(wrong), digest=sha(b"something else")),
            pb.LocalFile(path=str(fifo)),  # must not block the server
            pb.LocalFile(path=str(tmp_path / "missing")),
            pb.LocalFile(path="relative/path"),
        ],
    )
    reply = await stack.stub.IngestLocal(request, metadata=stack.md)
    first, *refused = reply.files
    assert (first.digest, first.size, first.created, first.error) == (sha(b"good bytes"), 10, True, "")
    assert first.inode == good.stat().st_ino and first.mtime_ns == good.stat().st_mtime_ns
    assert [bool(r.error) for r in refused] == [True] * 4 and not any(r.digest for r in refused)
    assert f"hashes to {sha(wrong.read_bytes())}" in refused[0].error
    assert "not a regular file" in refused[1].error
    assert "No such file" in refused[2].error and "absolute" in refused[3].error
    assert {b.digest for b in stack.blobs.blobs()} == {sha(b"good bytes")}
    assert await stack.events() == ["BlobStored"]
    assert [p for p in stack.blobs.tmp.rglob("*") if not p.is_dir()] == []  # nothing half-written left behind
    again = await stack.stub.IngestLocal(request, metadata=stack.md)
    assert not again.files[0].created and await stack.events() == ["BlobStored"]


@pytest.mark.parametrize("size", [5000, BIG])
async def test_a_blob_damaged_in_the_store_is_caught_by_a_local_pull(
    stack: ArtifactStack, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    src = tree(tmp_path / "src", {"f.bin": data})
    v = await sdk(stack, lambda c: art.log_artifacts(src, name="ds", conn=c))
    blob = stack.blobs.path(sha(data))
    blob.chmod(0o644)
    fd = os.open(blob, os.O_WRONLY)  # one flipped byte, same size, same name
    os.pwrite(fd, bytes([data[size // 2] ^ 1]), size // 2)
    os.close(fd)
    target = tmp_path / "out"
    with pytest.raises(OSError, match=f"blob {sha(data)} for 'f.bin' is damaged in the store"):
        await sdk(stack, lambda c: art.get("ds", conn=c).download(target))
    assert list(target.iterdir()) == []  # no partial file, under its name or another
    with pytest.raises(OSError, match="arrived corrupt"):  # the streamed path catches it too
        await sdk(stack, lambda c: art.get("ds", conn=c).download(target, local=False))
    assert v.file_count == 1


SIZES = [0, 1, localcopy.BUFFER, localcopy.BUFFER * localcopy.BUFFERS + 1, BIG, localcopy.CHUNK - 1]
SIZES += [localcopy.CHUNK, 2 * localcopy.CHUNK + 12_345]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("copier", [localcopy.copy_hashed, localcopy.copy_then_hash])
def test_a_local_copy_copies_exactly_and_hashes_what_it_wrote(
    tmp_path: Path, size: int, copier: Callable[..., str | None]
) -> None:
    data = os.urandom(max(SIZES))
    (tmp_path / "src").write_bytes(data)

    def copy(name: str, n: int) -> str | None:
        src = os.open(tmp_path / "src", os.O_RDONLY)
        dst = os.open(tmp_path / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            return copier(src, dst, n, writeback=True)
        finally:
            os.close(src)
            os.close(dst)

    assert copy("out", size) == sha(data[:size]) and (tmp_path / "out").read_bytes() == data[:size]
    (tmp_path / "src").write_bytes(data[: size // 2])  # shrank since its size was taken
    if size:
        with pytest.raises(localcopy.SourceChanged):
            copy("short", size)


def test_where_the_kernel_cannot_copy_ingest_copies_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """copy_then_hash declines with nothing written (another file system before Linux 5.19, or no
    copy_file_range), and the store's ingest then copies through its own buffers."""
    data = os.urandom(localcopy.CHUNK + 4_321)
    (tmp_path / "big.bin").write_bytes(data)
    calls: list[int] = []

    def no_copy(src: int, dst: int, count: int, offset_src: int, offset_dst: int) -> int:
        calls.append(count)
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(localcopy.os, "copy_file_range", no_copy)
    src = os.open(tmp_path / "big.bin", os.O_RDONLY)
    dst = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert localcopy.copy_then_hash(src, dst, len(data)) is None
        assert os.fstat(dst).st_size == 0
    finally:
        os.close(src)
        os.close(dst)
    store = FileBlobStore(tmp_path / "store")
    [stored] = store.ingest_many([(str(tmp_path / "big.bin"), None)])
    assert calls and stored.error == "" and stored.digest == sha(data) and stored.created
    assert store.path(sha(data)).read_bytes() == data


class TouchOnFirstAdvance:
    """Progress that modifies the file being uploaded once bytes start to flow."""

    def __init__(self, path: Path) -> None:
        self.path, self.done = path, False

    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None:
        if n and not self.done:
            self.done = True
            with open(self.path, "r+b") as fh:
                fh.write(b"X")

    def finish(self) -> None: ...


@pytest.mark.parametrize("local", [False, True], ids=["streamed", "same-host"])
async def test_a_file_changed_while_it_uploads_is_refused_not_recorded_with_a_stale_digest(
    stack: ArtifactStack, tmp_path: Path, local: bool
) -> None:
    src = tree(tmp_path / "src", {"a.bin": os.urandom(3 << 20)})
    files = art.scan(src)
    progress = TouchOnFirstAdvance(src / "a.bin")
    if local:  # the server reads the file after the client scanned it: change it in between
        progress.advance(1)
    with pytest.raises(FailedPrecondition, match="changed while it was uploaded"):
        await sdk(stack, lambda c: art.upload(art.stub(c), files, progress, local=local))
    assert files[0].digest is None


async def test_files_the_server_cannot_read_are_streamed_instead(
    stack: ArtifactStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = FileBlobStore._ingest

    def unreadable(store: FileBlobStore, batch: Any, path: str, expected: str | None) -> Any:
        if "private" in path:  # what a file only the client's user may read looks like
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(store, batch, path, expected)

    monkeypatch.setattr(FileBlobStore, "_ingest", unreadable)
    stack.ingest_in_process(monkeypatch)
    calls = Calls(monkeypatch)
    data = {"open/a.bin": os.urandom(5000), "private/b.bin": os.urandom(5000), "private/c.bin": b""}
    src = tree(tmp_path / "src", data)
    v = await sdk(stack, lambda c: art.log_artifacts(src, name="ds", conn=c))
    assert calls.uploads > 0 and v.file_count == 3
    await sdk(stack, lambda c: art.get("ds", conn=c).download(tmp_path / "out"))
    assert read_tree(tmp_path / "out") == data


class Hashes:
    """Counts the local copies that hash their bytes (copy_hashed) instead of trusting a seal."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = samehost.copy_hashed

        def counted(*a: Any, **kw: Any) -> str:
            self.calls += 1
            return real(*a, **kw)

        monkeypatch.setattr(samehost, "copy_hashed", counted)


async def test_sealed_blobs_are_copied_unread_and_verify_hashes_every_one(
    stack: ArtifactStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = files()
    src = tree(tmp_path / "src", data)
    await sdk(stack, lambda c: art.log_artifacts(src, name="ds", conn=c))
    hashes = Hashes(monkeypatch)
    await sdk(stack, lambda c: art.get("ds", conn=c).download(tmp_path / "fast"))
    assert read_tree(tmp_path / "fast") == data and hashes.calls == 0
    await sdk(stack, lambda c: art.get("ds", conn=c).download(tmp_path / "verified", verify=True))
    assert read_tree(tmp_path / "verified") == data
    assert hashes.calls == len(set(data.values()))


def rewrite(blob: Path, offset: int, byte: int) -> None:
    blob.chmod(0o644)
    fd = os.open(blob, os.O_WRONLY)
    os.pwrite(fd, bytes([byte]), offset)
    os.close(fd)


async def test_a_blob_rewritten_with_its_mtime_put_back_is_caught_by_verify(
    stack: ArtifactStack, tmp_path: Path
) -> None:
    """The seal covers what a file system records of a write; a forger who also restores the mtime
    (or a bit rotting on the disk) is what `verify` is for."""
    data = os.urandom(BIG)
    src = tree(tmp_path / "src", {"f.bin": data})
    await sdk(stack, lambda c: art.log_artifacts(src, name="ds", conn=c))
    blob = stack.blobs.path(sha(data))
    before = blob.stat()
    rewrite(blob, 7, data[7] ^ 1)
    os.utime(blob, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(OSError, match=f"blob {sha(data)} for 'f.bin' is damaged in the store"):
        await sdk(stack, lambda c: art.get("ds", conn=c).download(tmp_path / "out", verify=True))


async def test_a_blob_without_its_seal_or_with_another_blobs_is_hashed(
    stack: ArtifactStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = os.urandom(5000), os.urandom(5000)
    src = tree(tmp_path / "src", {"a.bin": a, "b.bin": b})
    await sdk(stack, lambda c: art.log_artifacts(src, name="ds", conn=c))
    hashes = Hashes(monkeypatch)
    os.removexattr(stack.blobs.path(sha(a)), seal.ATTRIBUTE)  # e.g. stored before seals existed
    await sdk(stack, lambda c: art.get("ds", conn=c).download(tmp_path / "out"))
    assert read_tree(tmp_path / "out") == {"a.bin": a, "b.bin": b} and hashes.calls == 1
    # b's file, seal, mtime and all, copied over a's name: the seal names b's digest, not a's.
    stack.blobs.path(sha(a)).unlink()
    shutil.copy2(stack.blobs.path(sha(b)), stack.blobs.path(sha(a)))  # with its xattrs and mtime
    with pytest.raises(OSError, match=f"blob {sha(a)} for 'a.bin' is damaged in the store"):
        await sdk(stack, lambda c: art.get("ds", conn=c).download(tmp_path / "again"))


@pytest.mark.parametrize("kernel", [True, False])
def test_copy_plain_copies_exactly_in_the_kernel_or_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: bool
) -> None:
    if not kernel:  # as across file systems before Linux 5.19

        def refuse(*a: Any, **kw: Any) -> int:
            raise OSError(errno.EXDEV, "cross-device")

        monkeypatch.setattr(os, "copy_file_range", refuse)
    data = os.urandom(BIG)
    (tmp_path / "src").write_bytes(data)
    src = os.open(tmp_path / "src", os.O_RDONLY)
    dst = os.open(tmp_path / "dst", os.O_WRONLY | os.O_CREAT)
    try:
        localcopy.copy_plain(src, dst, len(data))
        with pytest.raises(localcopy.SourceChanged):
            localcopy.copy_plain(src, dst, len(data) + 1)
    finally:
        os.close(src)
        os.close(dst)
    assert (tmp_path / "dst").read_bytes() == data


@pytest.mark.parametrize("umask", [0o022, 0o077])
async def test_pulled_files_get_the_manifests_modes_whatever_the_umask(
    stack: ArtifactStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    src = tree(tmp_path / "src", {"run.sh": b"#!/bin/sh\n", "data.csv": b"a,b\n"})
    (src / "run.sh").chmod(0o755)
    await sdk(stack, lambda c: art.log_artifacts(src, name="ds", conn=c))
    monkeypatch.setattr(samehost, "_UMASK", samehost._Umask())  # read afresh, under this umask
    old = os.umask(umask)
    try:
        await sdk(stack, lambda c: art.get("ds", conn=c).download(tmp_path / "out"))
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert modes == {"run.sh": 0o755, "data.csv": 0o644}


def test_copy_all_gives_each_thread_runs_of_neighbours_and_answers_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken: dict[int, list[int]] = {}

    def fake(store: Any, entry: Any, target: Any, progress: Any, *, verify: bool) -> bool:
        taken.setdefault(threading.get_ident(), []).append(entry)
        return entry % 3 != 0  # some blobs are not readable here: those are streamed

    monkeypatch.setattr(samehost, "_copy_local", fake)
    items = [(i, Path(f"t{i}")) for i in range(1000)]
    done = samehost.copy_all(Any, items, None, workers=2)  # type: ignore[arg-type]
    assert done == [i % 3 != 0 for i in range(1000)]
    runs = [run for seen in taken.values() for run in _runs(seen)]
    assert sorted(i for run in runs for i in run) == list(range(1000))
    assert sum(len(run) < 1000 // 16 for run in runs) <= 1  # runs (one short last), not single items


def _runs(seen: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for i in seen:
        if out and out[-1][-1] == i - 1:
            out[-1].append(i)
        else:
            out.append([i])
    return out
