"""The registry and artifacts services as the monitoring service sees them: through their gRPC APIs.

The plumbing (where a peer is, the internal token, status translation) is `modelog_platform.peers`;
this adds the calls monitoring makes: resolve a model reference, find a file in an artifact version,
and store or fetch blobs (prediction batches and references are Parquet blobs in the artifacts
service, never files of our own).
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from dataclasses import dataclass

import grpc

from eventlog import FailedPrecondition, InvalidArgument, NotFound
from modelog._gen.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from modelog._gen.registry.v1 import registry_pb2, registry_pb2_grpc
from modelog.shared.artifacts.refs import parse_ref
from modelog_platform.peers import TIMEOUT_S, PeerClient

CHUNK = 1 << 20
SMALL = 1 << 20
"""Blobs up to this size go whole in one UploadBatch message."""


@dataclass(frozen=True)
class ModelRef:
    model: str
    version: int


@dataclass(frozen=True)
class ArtifactFile:
    artifact: str
    """The version it resolved to, as "name:v3"."""
    path: str
    digest: str
    size: int


def parse_model_ref(ref: str, field: str = "model") -> registry_pb2.VersionRef:
    """ "churn@champion", "churn/3", "churn:3" or "churn" (the newest version)."""
    text = ref.strip()
    if not text:
        raise InvalidArgument.field(field, "name the model to watch, as churn@champion or churn/3")
    if "@" in text:
        model, _, alias = text.rpartition("@")
        if not model or not alias:
            raise InvalidArgument.field(field, f"{ref!r} is not model@alias")
        return registry_pb2.VersionRef(model=model, alias=alias)
    cut = max(text.rfind("/"), text.rfind(":"))
    if cut == -1:
        return registry_pb2.VersionRef(model=text)
    number = text[cut + 1 :].removeprefix("v")
    if not number.isdigit() or int(number) < 1:
        raise InvalidArgument.field(field, f"{ref!r}: after the model name comes a version number (churn/3)")
    return registry_pb2.VersionRef(model=text[:cut], version=int(number))


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class MonitoringPeers(PeerClient):
    async def model_version(self, ref: str) -> ModelRef:
        """The model a reference names; NOT_FOUND when the registry has no such version."""
        stub = registry_pb2_grpc.RegistryStub(self._channel("registry"))
        request = registry_pb2.GetModelVersionRequest(ref=parse_model_ref(ref))
        resp = await self._call("registry", f"model version {ref!r}", "model", stub.GetModelVersion, request)
        return ModelRef(resp.version.model, int(resp.version.version))

    async def artifact_file(self, ref: str, path: str) -> ArtifactFile:
        """The digest of `path` inside the artifact version `ref` names."""
        parsed = parse_ref(ref, "reference")
        stub = artifacts_pb2_grpc.ArtifactsStub(self._channel("artifacts"))
        vref = artifacts_pb2.VersionRef(
            name=parsed.name, version=parsed.version or 0, alias=parsed.alias or ""
        )
        request = artifacts_pb2.GetVersionRequest(ref=vref, include_entries=True)
        resp = await self._call("artifacts", f"artifact {ref!r}", "reference", stub.GetVersion, request)
        v = resp.version
        entries = {e.path: e for e in v.entries}
        if not path:
            data = [p for p in entries if p.endswith((".parquet", ".csv"))]
            if len(data) != 1:
                raise InvalidArgument.field(
                    "reference_path", f"{ref} holds {len(data)} Parquet/CSV files: name the one to use"
                )
            path = data[0]
        entry = entries.get(path)
        if entry is None:
            shown = ", ".join(sorted(entries)[:10]) or "no files"
            raise NotFound(f"artifact {v.name}:v{v.version} has no file {path!r} (it has: {shown})")
        return ArtifactFile(f"{v.name}:v{v.version}", path, entry.digest, entry.size)

    async def fetch(self, digest: str) -> bytes:
        """A whole blob (a prediction batch or a reference: tens of MB at most)."""
        stub = artifacts_pb2_grpc.ArtifactsStub(self._channel("artifacts"))
        request = artifacts_pb2.DownloadRequest(ranges=[artifacts_pb2.ByteRange(digest=digest)])
        parts: list[bytes] = []
        try:
            call = stub.Download(request, metadata=await self._metadata(), timeout=TIMEOUT_S * 6)
            async for reply in call:
                parts.append(reply.data)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise FailedPrecondition(
                    f"blob {digest} is gone from the artifacts service ({exc.details()})"
                ) from None
            raise
        return b"".join(parts)

    async def store(self, data: bytes, digest: str) -> None:
        """Upload a blob unless the artifacts service has it; returns once it is stored."""
        stub = artifacts_pb2_grpc.ArtifactsStub(self._channel("artifacts"))
        metadata = await self._metadata()
        have = await stub.HaveBlobs(
            artifacts_pb2.HaveBlobsRequest(digests=[digest]), metadata=metadata, timeout=TIMEOUT_S
        )
        if digest not in have.missing:
            return
        call = stub.Upload(metadata=metadata, timeout=TIMEOUT_S * 6)
        stored = False
        if len(data) <= SMALL:
            blob = artifacts_pb2.UploadBlob(digest=digest, data=data, crc32=zlib.crc32(data))
            await call.write(artifacts_pb2.UploadRequest(batch=artifacts_pb2.UploadBatch(blobs=[blob])))
        else:
            await call.write(
                artifacts_pb2.UploadRequest(open=artifacts_pb2.UploadOpen(digest=digest, size=len(data)))
            )
            opened = await call.read()
            stored = bool(opened.stored)
            if not stored:
                view = memoryview(data)
                for offset in range(opened.offset, len(data), CHUNK):
                    piece = bytes(view[offset : offset + CHUNK])
                    chunk = artifacts_pb2.UploadChunk(offset=offset, data=piece, crc32=zlib.crc32(piece))
                    await call.write(artifacts_pb2.UploadRequest(chunk=chunk))
        await call.done_writing()
        while (reply := await call.read()) is not grpc.aio.EOF:
            stored = stored or (reply.stored and reply.digest == digest)
        if not stored:
            raise FailedPrecondition(f"the artifacts service did not confirm blob {digest} as stored")

    async def store_many(self, blobs: list[tuple[bytes, str]]) -> None:
        await asyncio.gather(*(self.store(data, digest) for data, digest in blobs))
