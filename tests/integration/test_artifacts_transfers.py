"""Upload sessions over gRPC: a broken upload resumes where the server's bytes end, also after a server
restart (re-hashing the held bytes); corrupt chunks, wrong digests and gaps are refused."""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog_services.artifacts import blobstore
from tests.integration.test_artifacts_stack import ArtifactStack, chunks, open_stack, put_blobs, sha, stack
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio
__all__ = ["stack"]

SIZE = 6 << 20


async def send_half_then_break(s: ArtifactStack, data: bytes) -> int:
    """Open an upload, send half of the bytes, wait until the server holds them, then drop the call
    (what the server sees when a client dies)."""
    half = len(data) // 2
    part = s.blobs.uploads / f"d-{sha(data)}.part"
    release = asyncio.Event()

    async def requests() -> AsyncIterator[pb.UploadRequest]:
        yield pb.UploadRequest(open=pb.UploadOpen(digest=sha(data), size=len(data)))
        for r in chunks(data[:half]):
            yield r
        await release.wait()

    call = s.stub.Upload(requests(), metadata=s.md)
    first = await call.read()
    assert first.offset == 0 and not first.stored
    await wait_until_async(lambda: part.exists() and part.stat().st_size == half, 10, "half the bytes held")
    call.cancel()
    await wait_until_async(lambda: not blobstore_is_locked(s, f"d-{sha(data)}"), 10, "the session unlocked")
    return half


def blobstore_is_locked(s: ArtifactStack, key: str) -> bool:
    return any(x.active for x in s.blobs.sessions() if x.key == key)


async def resume(s: ArtifactStack, data: bytes) -> tuple[int, pb.UploadResponse]:
    """Open again, send only what the server lacks, return (resume offset, final reply)."""
    opened = asyncio.get_running_loop().create_future()

    async def requests() -> AsyncIterator[pb.UploadRequest]:
        yield pb.UploadRequest(open=pb.UploadOpen(digest=sha(data), size=len(data)))
        offset = await opened
        for r in chunks(data, offset):
            yield r

    replies = []
    async for reply in s.stub.Upload(requests(), metadata=s.md):
        if not opened.done():
            opened.set_result(reply.offset)
        replies.append(reply)
    return opened.result(), replies[-1]


async def test_a_broken_upload_resumes_from_the_servers_offset(stack: ArtifactStack) -> None:
    data = os.urandom(SIZE)
    half = await send_half_then_break(stack, data)
    offset, final = await resume(stack, data)
    assert offset == half
    assert final.stored and final.digest == sha(data) and not final.existed
    assert stack.blobs.path(sha(data)).read_bytes() == data
    assert list(stack.blobs.sessions()) == []
    assert await stack.events() == ["BlobStored"]


async def test_an_upload_resumes_after_a_server_restart_by_rehashing(
    stack: ArtifactStack, fresh_db: str, modelog_home: Path
) -> None:
    data = os.urandom(SIZE)
    half = await send_half_then_break(stack, data)
    await stack.server.stop(0)
    await stack.platform.close()
    platform, server, token = await open_stack(fresh_db, modelog_home)  # no hash state in memory
    stack.platform, stack.server, stack.admin = platform, server, token
    await stack.channel.close()
    stack.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stack.stub = type(stack.stub)(stack.channel)
    offset, final = await resume(stack, data)
    assert offset == half and final.stored and final.digest == sha(data)
    assert stack.blobs.path(sha(data)).read_bytes() == data


async def test_durable_progress_is_acknowledged_while_uploading(
    stack: ArtifactStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobstore, "CHECKPOINT_BYTES", 1 << 20)
    data = os.urandom(SIZE)
    replies = await put_blobs(stack, [data])
    acks = [r.offset for r in replies if not r.stored]
    assert acks[0] == 0 and acks[1:] == sorted(acks[1:]) and len(acks) >= 5
    assert replies[-1].stored


@pytest.mark.parametrize("size", [3 << 20, 1 << 19], ids=["session", "small blob"])
async def test_a_corrupted_chunk_is_refused_and_nothing_of_it_kept(stack: ArtifactStack, size: int) -> None:
    data = os.urandom(size)

    async def requests() -> AsyncIterator[pb.UploadRequest]:
        yield pb.UploadRequest(open=pb.UploadOpen(digest=sha(data), size=len(data)))
        good = data[: 1 << 18]
        yield pb.UploadRequest(chunk=pb.UploadChunk(offset=0, data=good, crc32=zlib.crc32(good)))
        bad = bytearray(data[1 << 18 : 1 << 19])
        crc = zlib.crc32(bad)
        bad[100] ^= 0xFF  # flipped in transit
        yield pb.UploadRequest(chunk=pb.UploadChunk(offset=1 << 18, data=bytes(bad), crc32=crc))

    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stack.stub.Upload(requests(), metadata=stack.md):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "crc32" in (info.value.details() or "") and "corrupt" in (info.value.details() or "")
    offset, final = await resume(stack, data)
    # A session keeps the good chunk and drops the corrupt one; a small blob is simply sent again.
    assert offset == (1 << 18 if size > blobstore.SMALL_MAX else 0)
    assert final.stored and stack.blobs.path(sha(data)).read_bytes() == data


async def test_bytes_that_do_not_hash_to_the_digest_are_refused(stack: ArtifactStack) -> None:
    data, claimed = os.urandom(4096), sha(b"something else")

    async def requests() -> AsyncIterator[pb.UploadRequest]:
        yield pb.UploadRequest(open=pb.UploadOpen(digest=claimed, size=len(data)))
        for r in chunks(data):
            yield r

    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stack.stub.Upload(requests(), metadata=stack.md):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert claimed in (info.value.details() or "")
    assert stack.blobs.size(claimed) is None and list(stack.blobs.sessions()) == []
    assert await stack.events() == []


async def test_a_chunk_past_the_held_bytes_is_refused(stack: ArtifactStack) -> None:
    data = os.urandom(4096)

    async def requests() -> AsyncIterator[pb.UploadRequest]:
        yield pb.UploadRequest(open=pb.UploadOpen(digest=sha(data), size=len(data)))
        yield pb.UploadRequest(
            chunk=pb.UploadChunk(offset=100, data=data[100:], crc32=zlib.crc32(data[100:]))
        )

    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stack.stub.Upload(requests(), metadata=stack.md):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "gap" in (info.value.details() or "")


async def test_a_second_stream_for_a_blob_in_flight_is_told_to_retry(stack: ArtifactStack) -> None:
    data = os.urandom(SIZE)
    release = asyncio.Event()

    async def slow() -> AsyncIterator[pb.UploadRequest]:
        yield pb.UploadRequest(open=pb.UploadOpen(digest=sha(data), size=len(data)))
        await release.wait()

    first = stack.stub.Upload(slow(), metadata=stack.md)
    await first.read()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.stub.Upload(slow(), metadata=stack.md).read()
    assert info.value.code() == grpc.StatusCode.ABORTED
    assert "being uploaded" in (info.value.details() or "")
    first.cancel()


async def test_hash_while_uploading_reports_the_digest(stack: ArtifactStack) -> None:
    data = os.urandom(3 << 20)
    sid = "ab" * 16

    async def requests() -> AsyncIterator[pb.UploadRequest]:
        yield pb.UploadRequest(open=pb.UploadOpen(size=len(data), session_id=sid))
        for r in chunks(data):
            yield r

    replies = [r async for r in stack.stub.Upload(requests(), metadata=stack.md)]
    assert replies[-1].stored and replies[-1].digest == sha(data) and replies[-1].session_id == sid
    again = [r async for r in stack.stub.Upload(requests(), metadata=stack.md)]
    assert again[-1].stored and again[-1].existed  # a duplicate is found once its bytes are hashed
