"""Scrubbing the blob store (VerifyStore, `modelog admin verify-store`): intact blobs are ok, blobs
without a seal get one when asked, a blob rewritten behind the seal's back is reported damaged and
left exactly as found, blobs deleted meanwhile are not errors, and only an admin may run it."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from click.testing import CliRunner, Result

from eventlog import FailedPrecondition
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog.cli import main as cli_main
from modelog.shared.artifacts import seal
from modelog_services.artifacts import scrub
from modelog_services.artifacts.api import ArtifactsServicer
from modelog_services.artifacts.blobstore import BlobInfo, FileBlobStore
from tests.integration.test_artifacts_blobstore import is_sealed
from tests.integration.test_artifacts_samehost import rewrite
from tests.integration.test_artifacts_stack import ArtifactStack, put_blobs, sha, stack

__all__ = ["stack"]

BLOBS = [b"alpha", b"beta", os.urandom(3 << 20)]  # one of several chunks


async def verify(
    s: ArtifactStack, *, reseal: bool = True, token: str | None = None
) -> list[pb.VerifyStoreProgress]:
    md = [("authorization", f"Bearer {token or s.admin}")]
    return [m async for m in s.stub.VerifyStore(pb.VerifyStoreRequest(reseal=reseal), metadata=md)]


def counts(m: pb.VerifyStoreProgress) -> tuple[int, int, int, int, int]:
    return m.ok, m.resealed, m.unsealed, m.damaged, m.vanished


def forge(path: Path, offset: int) -> bytes:
    """Flip a byte of a stored blob and put its times back, as a forger with the server's
    permissions would (or as a bit rotting on the disk looks): its seal still matches."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    rewrite(path, offset, data[offset])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return bytes(data)


async def test_a_clean_store_is_all_ok(stack: ArtifactStack) -> None:
    await put_blobs(stack, BLOBS)
    replies = await verify(stack)
    last = replies[-1]
    assert last.done and [m.done for m in replies].count(True) == 1
    assert counts(last) == (3, 0, 0, 0, 0) and list(last.damaged_blobs) == []
    assert (last.blobs_done, last.blobs_total) == (3, 3)
    assert last.bytes_done == last.bytes_total == sum(map(len, BLOBS))


async def test_a_blob_without_its_seal_is_resealed_and_keeps_its_mtime(stack: ArtifactStack) -> None:
    await put_blobs(stack, BLOBS)
    path = stack.blobs.path(sha(b"beta"))
    os.removexattr(path, seal.ATTRIBUTE)  # as if stored before seals existed
    before = path.stat()
    last = (await verify(stack))[-1]
    assert counts(last) == (2, 1, 0, 0, 0)
    assert is_sealed(stack.blobs, sha(b"beta"))
    after = path.stat()
    assert (after.st_mtime_ns, stat.S_IMODE(after.st_mode)) == (before.st_mtime_ns, 0o444)
    assert counts((await verify(stack))[-1]) == (3, 0, 0, 0, 0)


async def test_without_reseal_an_unsealed_blob_is_counted_and_left_unsealed(stack: ArtifactStack) -> None:
    await put_blobs(stack, BLOBS)
    os.removexattr(stack.blobs.path(sha(b"beta")), seal.ATTRIBUTE)
    assert counts((await verify(stack, reseal=False))[-1]) == (2, 0, 1, 0, 0)
    assert not is_sealed(stack.blobs, sha(b"beta"))
    with pytest.raises(OSError):
        os.getxattr(stack.blobs.path(sha(b"beta")), seal.ATTRIBUTE)


@pytest.mark.parametrize("with_seal", [True, False])
async def test_a_blob_rewritten_with_its_mtime_put_back_is_reported_damaged_and_loses_its_seal(
    stack: ArtifactStack, with_seal: bool
) -> None:
    await put_blobs(stack, BLOBS)
    digest = sha(BLOBS[2])
    path = stack.blobs.path(digest)
    if not with_seal:
        os.removexattr(path, seal.ATTRIBUTE)
    forged = forge(path, 2 << 20)
    assert is_sealed(stack.blobs, digest) == with_seal  # the seal cannot tell
    attrs = {a: os.getxattr(path, a) for a in os.listxattr(path)}
    before = path.stat()

    last = (await verify(stack, reseal=True))[-1]
    assert counts(last) == (2, 0, 0, 1, 0)
    [damaged] = last.damaged_blobs
    assert (damaged.digest, damaged.path, damaged.actual_sha256) == (digest, str(path), sha(forged))
    assert sha(forged) in damaged.reason
    after = path.stat()
    assert path.read_bytes() == forged
    # Not resealed; a seal it had is taken away, so that pulls hash it and fail loudly.
    assert seal.ATTRIBUTE not in os.listxattr(path)
    assert {a: os.getxattr(path, a) for a in os.listxattr(path)} == {
        a: v for a, v in attrs.items() if a != seal.ATTRIBUTE
    }
    assert (after.st_mtime_ns, after.st_mode) == (before.st_mtime_ns, before.st_mode)


async def test_only_an_admin_may_verify_the_store(stack: ArtifactStack) -> None:
    identity = identity_pb2_grpc.IdentityStub(stack.channel)
    member = await identity.CreateToken(identity_pb2.CreateTokenRequest(name="ci"), metadata=stack.md)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await verify(stack, token=member.secret)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "admin" in (info.value.details() or "")


async def test_a_store_that_is_not_on_the_local_file_system_is_refused_clearly() -> None:
    servicer = ArtifactsServicer(SimpleNamespace(blobs=object()))  # type: ignore[arg-type]
    with pytest.raises(FailedPrecondition, match="VerifyStore re-hashes the files of the local blob store"):
        [m async for m in servicer.VerifyStore(pb.VerifyStoreRequest(), None)]  # type: ignore[arg-type]


async def cli(s: ArtifactStack, *args: str) -> Result:
    env = {"MODELOG_URL": s.url, "MODELOG_TOKEN": s.admin}
    return await asyncio.to_thread(
        CliRunner().invoke, cli_main, ["admin", "verify-store", *args], env=env, catch_exceptions=False
    )


async def test_the_cli_exits_1_and_names_the_damaged_blob(stack: ArtifactStack) -> None:
    await put_blobs(stack, BLOBS)
    clean = await cli(stack)
    assert clean.exit_code == 0, clean.output
    assert "verified 3 blobs" in clean.stdout and "0 damaged" in clean.stdout

    digest = sha(BLOBS[0])
    forged = forge(stack.blobs.path(digest), 0)
    os.removexattr(stack.blobs.path(sha(b"beta")), seal.ATTRIBUTE)
    text = await cli(stack, "--no-reseal")
    assert text.exit_code == 1
    assert "1 unsealed" in text.stdout and "1 damaged" in text.stdout
    [line] = [ln for ln in text.stdout.splitlines() if ln.startswith("DAMAGED")]
    assert digest in line and str(stack.blobs.path(digest)) in line and sha(forged) in line
    assert not is_sealed(stack.blobs, sha(b"beta"))

    as_json = await cli(stack, "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert (report["blobs"], report["ok"], report["resealed"], report["damaged"]) == (3, 1, 1, 1)
    assert report["damaged_blobs"] == [
        {
            "digest": digest,
            "path": str(stack.blobs.path(digest)),
            "actual_sha256": sha(forged),
            "reason": f"its bytes hash to {sha(forged)}",
        }
    ]


# ---------------------------------------------------------------- the scrub on a bare store


def test_blobs_deleted_while_the_store_is_walked_are_vanished_not_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileBlobStore(tmp_path)
    kept, _ = store.put(b"kept")
    gone = sha(b"collected meanwhile")
    listed = [*store.blobs(), BlobInfo(gone, 19, 0.0)]  # listed, then deleted by GC

    def blobs() -> Iterator[BlobInfo]:
        yield from listed

    monkeypatch.setattr(store, "blobs", blobs)
    report = scrub.Scrub(store, reseal=True).run()
    assert report.done and (report.ok, report.vanished, report.blobs_done) == (1, 1, 2)
    assert report.damaged == 0 and is_sealed(store, kept)


def test_a_symbolic_link_in_the_store_is_reported_not_followed(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "store")
    outside = tmp_path / "outside"
    outside.write_bytes(b"somewhere else")
    digest = sha(b"somewhere else")
    store.path(digest).parent.mkdir(parents=True, exist_ok=True)
    store.path(digest).symlink_to(outside)
    report = scrub.Scrub(store, reseal=True).run()
    assert report.damaged == 1 and report.damaged_blobs[0].reason == "is a symbolic link, not a stored blob"
    assert store.path(digest).is_symlink() and not os.listxattr(outside)


def test_an_owner_that_is_not_root_reseals_a_read_only_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Linux lets only a writer of the inode set user.* attributes (root passes regardless): the
    scrub lends the owner u+w for the call and puts the mode back."""
    store = FileBlobStore(tmp_path)
    digest, _ = store.put(b"stored before seals")
    os.removexattr(store.path(digest), seal.ATTRIBUTE)
    real = os.setxattr

    def as_owner(target: int, name: str, value: bytes) -> None:
        if not os.fstat(target).st_mode & stat.S_IWUSR:
            raise PermissionError(13, "Permission denied")
        real(target, name, value)

    monkeypatch.setattr(os, "setxattr", as_owner)
    before = store.path(digest).stat()
    report = scrub.Scrub(store, reseal=True).run()
    assert report.resealed == 1 and is_sealed(store, digest)
    after = store.path(digest).stat()
    assert (after.st_mtime_ns, stat.S_IMODE(after.st_mode)) == (before.st_mtime_ns, 0o444)


class Gate:
    """Holds the scrub's reads after the first chunk until opened."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open, self.reads = threading.Event(), 0
        real = os.readv

        def readv(fd: int, buffers: list[memoryview]) -> int:
            self.reads += 1
            if self.reads > 1:
                assert self.open.wait(10), "the test never opened the gate"
            return real(fd, buffers)

        monkeypatch.setattr(os, "readv", readv)


async def test_progress_streams_while_a_blob_is_hashed_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileBlobStore(tmp_path)
    data = os.urandom(3 * scrub.CHUNK)
    store.put(data)
    gate = Gate(monkeypatch)
    replies: list[scrub.ScrubReport] = []

    async def consume() -> None:
        async for report in scrub.verify_store(store, reseal=True, interval_s=0.01):
            replies.append(report)
            if report.bytes_done == scrub.CHUNK:  # the worker waits at the gate, the loop runs
                gate.open.set()

    await asyncio.wait_for(consume(), 10)
    assert any(not r.done and (r.bytes_done, r.bytes_total) == (scrub.CHUNK, len(data)) for r in replies)
    assert [r.bytes_done for r in replies] == sorted(r.bytes_done for r in replies)
    assert replies[-1].done and replies[-1].ok == 1 and replies[-1].bytes_done == len(data)


def test_a_stopped_scrub_judges_nothing_it_did_not_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileBlobStore(tmp_path)
    store.put(os.urandom(3 * scrub.CHUNK))
    gate = Gate(monkeypatch)
    job = scrub.Scrub(store, reseal=True)
    worker = threading.Thread(target=job.run)
    worker.start()
    assert job.counted.wait(10)
    job.stop()
    gate.open.set()
    worker.join(10)
    report = job.snapshot()
    assert not worker.is_alive() and not report.done
    assert (report.blobs_done, report.ok, report.damaged) == (0, 0, 0)
