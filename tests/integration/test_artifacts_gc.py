"""Garbage collection: reachable blobs stay, unreachable old ones go (recorded in the log), blobs in
the grace period or needed by an upload in flight survive."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from tests.integration.test_artifacts_stack import ArtifactStack, chunks, put_blobs, sha, stack
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio
__all__ = ["stack"]


def age(s: ArtifactStack, digest: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(s.blobs.path(digest), (then, then))


async def commit(s: ArtifactStack, name: str, files: dict[str, bytes]) -> pb.CommitVersionResponse:
    await put_blobs(s, list(files.values()))
    entries = [pb.ManifestEntry(path=p, digest=sha(d), size=len(d)) for p, d in files.items()]
    return await s.stub.CommitVersion(pb.CommitVersionRequest(name=name, entries=entries), metadata=s.md)


async def gc(s: ArtifactStack, grace: int = 0, dry_run: bool = False) -> pb.GarbageCollectResponse:
    return await s.stub.GarbageCollect(
        pb.GarbageCollectRequest(grace_seconds=grace, dry_run=dry_run), metadata=s.md
    )


async def test_gc_keeps_reachable_blobs_and_collects_the_rest(stack: ArtifactStack) -> None:
    v1 = await commit(stack, "ds", {"a": b"alpha", "b": b"beta"})
    await commit(stack, "ds", {"a": b"alpha", "c": b"gamma"})  # beta stays reachable from v1
    await put_blobs(stack, [b"orphan one", b"orphan two"])
    for b in stack.blobs.blobs():
        age(stack, b.digest, 7200)

    dry = await gc(stack, dry_run=True)
    assert (dry.collected_blobs, dry.dry_run) == (2, True)
    assert stack.blobs.size(sha(b"orphan one")) is not None

    done = await gc(stack, grace=3600)
    assert done.collected_blobs == 2 and done.collected_bytes == len(b"orphan one") + len(b"orphan two")
    assert done.kept_blobs == 5  # alpha, beta, gamma and two manifests
    for kept in (b"alpha", b"beta", b"gamma"):
        assert stack.blobs.size(sha(kept)) is not None
    assert stack.blobs.size(v1.version.manifest_digest) is not None
    assert stack.blobs.size(sha(b"orphan one")) is None and stack.blobs.size(sha(b"orphan two")) is None
    assert (await stack.events())[-1] == "BlobsCollected"
    rows = await stack.platform.pool.fetch(
        "SELECT digest FROM artifacts.blobs WHERE collected_at IS NOT NULL"
    )
    assert {r[0] for r in rows} == {sha(b"orphan one"), sha(b"orphan two")}
    assert (await gc(stack)).collected_blobs == 0


async def test_gc_spares_young_blobs_and_those_just_reported_present(stack: ArtifactStack) -> None:
    await put_blobs(stack, [b"young", b"old but asked for"])
    assert (await gc(stack, grace=3600)).spared_blobs == 2
    age(stack, sha(b"old but asked for"), 7200)
    await stack.stub.HaveBlobs(pb.HaveBlobsRequest(digests=[sha(b"old but asked for")]), metadata=stack.md)
    report = await gc(stack, grace=3600)
    assert report.collected_blobs == 0 and report.spared_blobs == 2
    assert (await gc(stack, grace=0)).collected_blobs == 2


async def test_an_upload_in_flight_survives_gc_and_completes(stack: ArtifactStack) -> None:
    data = os.urandom(3 << 20)
    half = len(data) // 2
    go_on = asyncio.Event()

    async def requests() -> AsyncIterator[pb.UploadRequest]:
        yield pb.UploadRequest(open=pb.UploadOpen(digest=sha(data), size=len(data)))
        for r in chunks(data[:half]):
            yield r
        await go_on.wait()
        for r in chunks(data, half):
            yield r

    call = stack.stub.Upload(requests(), metadata=stack.md)
    assert (await call.read()).offset == 0
    part = stack.blobs.uploads / f"d-{sha(data)}.part"
    await wait_until_async(lambda: part.exists() and part.stat().st_size == half, 10, "half the bytes held")
    old = time.time() - 10 * 24 * 3600
    os.utime(part, (old, old))  # even an old-looking session is spared while a stream holds it
    await gc(stack, grace=0)
    assert part.exists()
    go_on.set()
    replies = []
    while (reply := await call.read()) is not grpc.aio.EOF:
        replies.append(reply)
    assert replies[-1].stored and replies[-1].digest == sha(data)
    assert stack.blobs.path(sha(data)).read_bytes() == data


async def test_gc_removes_only_abandoned_sessions(stack: ArtifactStack) -> None:
    stale = stack.blobs.open_session(10, sha(b"0123456789"))
    stale.pause()
    paused = stack.blobs.open_session(10, sha(b"abcdefghij"))
    paused.pause()
    old = time.time() - 8 * 24 * 3600
    os.utime(stack.blobs.uploads / f"d-{sha(b'0123456789')}.part", (old, old))
    report = await gc(stack, grace=0)
    assert report.removed_sessions == 1
    assert [s.key for s in stack.blobs.sessions()] == [f"d-{sha(b'abcdefghij')}"]


async def test_only_an_admin_may_collect(stack: ArtifactStack) -> None:
    identity = identity_pb2_grpc.IdentityStub(stack.channel)
    made = await identity.CreateToken(identity_pb2.CreateTokenRequest(name="ci"), metadata=stack.md)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.stub.GarbageCollect(
            pb.GarbageCollectRequest(), metadata=[("authorization", f"Bearer {made.secret}")]
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
