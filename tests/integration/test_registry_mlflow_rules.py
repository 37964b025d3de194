"""MLflow's registry rules the registry itself keeps, so a gRPC caller meets them as the gateway's
clients do: a version's MLflow source stays inside its run, and a model's update time moves with its
versions' stage changes and deletions (MLflow's `last_updated_timestamp`)."""

from __future__ import annotations

import grpc
import pytest

from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog_services.registry.sources import SOURCE_TAG
from tests.integration.test_registry_api import refused
from tests.integration.test_registry_stack import RegistryStack, stack

pytestmark = pytest.mark.asyncio
__all__ = ["stack"]


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc/passwd",
        "/etc",
        "mlflow-artifacts://host:9000/models/../../../",
        "http://host/../../../",
        "runs:/{run}/model/%252e%252e/%252e%252e/etc",
        "runs:/someone-elses-run/model",
    ],
)
async def test_a_grpc_version_with_an_mlflow_source_outside_its_run_is_refused(
    stack: RegistryStack, source: str
) -> None:
    run = await stack.trained_run()
    await stack.version("sources", run_id=run)
    artifact = await stack.model_artifact(run)
    request = pb.CreateModelVersionRequest(
        model="sources",
        run_id=run,
        artifact=pb.ArtifactRef(name=artifact.name, version=artifact.version),
        tags={SOURCE_TAG: source.format(run=run)},
    )
    await refused(
        stack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stack.api.CreateModelVersion(request, metadata=stack.md()),
        "Invalid model version source",
    )
    annotate = pb.AnnotateVersionRequest(
        ref=pb.VersionRef(model="sources", version=1), tags={SOURCE_TAG: source.format(run=run)}
    )
    await refused(
        stack,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: stack.api.AnnotateVersion(annotate, metadata=stack.md()),
        "Invalid model version source",
    )
    inside = await stack.version("sources", run_id=run, tags={SOURCE_TAG: f"runs:/{run}/model"})
    assert inside.tags[SOURCE_TAG] == f"runs:/{run}/model"


async def test_a_models_update_time_moves_with_a_stage_change_and_a_version_deletion(
    stack: RegistryStack,
) -> None:
    async def updated() -> tuple[int, int]:
        got = await stack.api.GetModel(pb.GetModelRequest(name="stamped"), metadata=stack.md())
        return got.model.updated_at.seconds, got.model.updated_at.nanos

    await stack.version("stamped")
    await stack.version("stamped")
    created = await updated()
    await stack.promote("stamped", 1, pb.STAGE_STAGING)
    staged = await updated()
    assert staged > created
    await stack.api.DeleteModelVersion(
        pb.DeleteModelVersionRequest(ref=pb.VersionRef(model="stamped", version=2)), metadata=stack.md()
    )
    assert await updated() > staged  # rebuilt the same: test_registry_api's rebuild deletes a version
