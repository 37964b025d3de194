"""The standard gRPC services on a real server: Health/List, and reflection as v1 and v1alpha.

Current grpcurl, grpcui and Postman ask `grpc.reflection.v1` first; older clients use v1alpha. The
two protos are the same messages, so v1alpha's classes encode a v1 request byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as refl

from modelog.shared.settings import Settings
from modelog_platform.app import Platform, start_server

EVENTLOG = "modelog.eventlog.v1.EventLog"


@pytest.fixture
async def channel(fresh_db: str, tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    platform = await Platform.open(Settings(home=tmp_path, addr="127.0.0.1:0"), fresh_db, ["tracking"])
    server = await start_server(platform, "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            yield ch
    finally:
        await server.stop(0)
        await platform.close()


async def _reflect(
    ch: grpc.aio.Channel, version: str, request: refl.ServerReflectionRequest
) -> refl.ServerReflectionResponse:
    call = ch.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=refl.ServerReflectionRequest.SerializeToString,
        response_deserializer=refl.ServerReflectionResponse.FromString,
    )
    responses = [r async for r in call(iter([request]), timeout=10)]
    assert len(responses) == 1
    return responses[0]


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_reflection_answers_as_v1_and_as_v1alpha(channel: grpc.aio.Channel, version: str) -> None:
    listed = await _reflect(channel, version, refl.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert {EVENTLOG, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= names
    assert "grpc.reflection.v1alpha.ServerReflection" in names

    for symbol, package in (
        (EVENTLOG, "modelog.eventlog.v1"),
        (f"grpc.reflection.{version}.ServerReflection", f"grpc.reflection.{version}"),
    ):
        found = await _reflect(channel, version, refl.ServerReflectionRequest(file_containing_symbol=symbol))
        assert not found.HasField("error_response"), found.error_response.error_message
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in found.file_descriptor_response.file_descriptor_proto
        ]
        assert package in {f.package for f in files}


async def test_health_list_names_every_service_and_its_status(channel: grpc.aio.Channel) -> None:
    listed = await health_pb2_grpc.HealthStub(channel).List(health_pb2.HealthListRequest(), timeout=10)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert listed.statuses[""].status == serving
    assert listed.statuses[EVENTLOG].status == serving
    assert listed.statuses["modelog.tracking.v1.Tracking"].status == serving
