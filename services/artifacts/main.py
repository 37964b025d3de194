"""Wiring of the artifacts service: the blob store under MODELOG_HOME, its servicer and inline views."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from modelog._gen.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from modelog_platform.service import ServiceSpec

from .api import ArtifactsServicer
from .blobstore import FileBlobStore
from .ingestpool import IngestPool, workers_from_env
from .places import resolvers
from .projections import ArtifactsView, BlobsView
from .service import ArtifactService

if TYPE_CHECKING:
    from modelog_platform.app import Platform
    from modelog_platform.authz import Resolver


def register(server: grpc.aio.Server, platform: Platform) -> list[str]:
    blobs = FileBlobStore(platform.settings.home / "blobs")
    service = ArtifactService(platform.stores["artifacts"], blobs)
    workers = workers_from_env()
    pool = IngestPool(blobs.root, workers) if workers else None
    if pool is not None:
        platform.on_close.append(pool.close)
    artifacts_pb2_grpc.add_ArtifactsServicer_to_server(ArtifactsServicer(service, pool), server)
    return [artifacts_pb2.DESCRIPTOR.services_by_name["Artifacts"].full_name]


def _resolvers(platform: Platform) -> dict[str, Resolver]:
    service = ArtifactService(platform.stores["artifacts"], FileBlobStore(platform.settings.home / "blobs"))
    return resolvers(platform.pool, service.manifest)


SPEC = ServiceSpec(
    name="artifacts",
    register=register,
    inline_projections=[ArtifactsView(), BlobsView()],
    resolvers=_resolvers,
)
