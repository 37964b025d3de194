"""The in-process artifacts stack the other artifacts tests import as a fixture, and a smoke test."""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from modelog._client import Connection
from modelog._gen.artifacts.v1 import artifacts_pb2 as pb
from modelog._gen.artifacts.v1 import artifacts_pb2_grpc
from modelog.shared.settings import Settings
from modelog_platform.app import Platform, Server, start_server
from modelog_services.artifacts.blobstore import FileBlobStore, Ingested
from modelog_services.artifacts.ingestpool import IngestPool

pytestmark = pytest.mark.asyncio


class ArtifactStack:
    def __init__(self, platform: Platform, server: Server, admin: str, home: Path) -> None:
        self.platform, self.server, self.admin, self.home = platform, server, admin, home
        self.url = f"127.0.0.1:{server.port}"
        self.channel = grpc.aio.insecure_channel(
            self.url, options=[("grpc.max_receive_message_length", 64 << 20)]
        )
        self.stub = artifacts_pb2_grpc.ArtifactsStub(self.channel)
        self.blobs = FileBlobStore(home / "blobs")

    @property
    def md(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.admin}")]

    def ingest_pool(self) -> IngestPool:
        """The server's IngestLocal worker processes (the platform closes them)."""
        [pool] = [
            fn.__self__
            for fn in self.platform.on_close
            if isinstance(getattr(fn, "__self__", None), IngestPool)
        ]
        return pool

    def ingest_in_process(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Have IngestLocal copy on the server's threads, where a test's monkeypatch reaches."""

        async def here(items: Sequence[tuple[str, str | None]]) -> list[Ingested]:
            return await asyncio.to_thread(self.blobs.ingest_many, items)

        monkeypatch.setattr(self.ingest_pool(), "ingest_many", here)

    def connection(self) -> Connection:
        """A synchronous SDK connection (use it from a thread: the server shares this event loop)."""
        return Connection(self.url, self.admin)

    async def events(self, type_: str | None = None) -> list[str]:
        rows = await self.platform.pool.fetch(
            "SELECT type FROM artifacts.events WHERE $1::text IS NULL OR type = $1 ORDER BY position", type_
        )
        return [r[0] for r in rows]


async def open_stack(dsn: str, home: Path) -> tuple[Platform, Server, str]:
    settings = Settings(home=home, addr="127.0.0.1:0")
    platform = await Platform.open(settings, dsn, services=["artifacts"])
    token = (await platform.ensure_admin_token()).read_text().strip()
    server = await start_server(platform, "127.0.0.1:0")
    return platform, server, token


@pytest.fixture
async def stack(
    fresh_db: str, modelog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ArtifactStack]:
    client_home = tmp_path / "client-home"
    monkeypatch.setenv("MODELOG_HOME", str(client_home))  # the SDK's hash cache lives here
    platform, server, token = await open_stack(fresh_db, modelog_home)
    s = ArtifactStack(platform, server, token, modelog_home)
    yield s
    await s.channel.close()
    await server.stop(0)
    await platform.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunks(data: bytes, offset: int = 0, size: int = 1 << 16) -> Iterator[pb.UploadRequest]:
    for i in range(offset, len(data), size):
        part = data[i : i + size]
        yield pb.UploadRequest(chunk=pb.UploadChunk(offset=i, data=part, crc32=zlib.crc32(part)))


async def put_blobs(s: ArtifactStack, blobs: Sequence[bytes]) -> list[pb.UploadResponse]:
    """Upload through the raw stream: open + chunks for each, then collect every reply."""

    def requests() -> Iterator[pb.UploadRequest]:
        for data in blobs:
            yield pb.UploadRequest(open=pb.UploadOpen(digest=sha(data), size=len(data)))
            yield from chunks(data)

    return [r async for r in s.stub.Upload(requests(), metadata=s.md)]


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def test_a_blob_uploads_and_downloads_through_the_raw_api(stack: ArtifactStack) -> None:
    data = b"hello artifacts" * 10_000
    replies = await put_blobs(stack, [data])
    assert replies[0].offset == 0 and not replies[0].stored
    assert replies[-1].stored and replies[-1].digest == sha(data) and not replies[-1].existed
    have = await stack.stub.HaveBlobs(pb.HaveBlobsRequest(digests=[sha(data), sha(b"x")]), metadata=stack.md)
    assert list(have.missing) == [sha(b"x")]
    got = b"".join(
        [
            r.data
            async for r in stack.stub.Download(
                pb.DownloadRequest(ranges=[pb.ByteRange(digest=sha(data), offset=5, length=100_000)]),
                metadata=stack.md,
            )
        ]
    )
    assert got == data[5:100_005]
    assert await stack.events() == ["BlobStored"]
