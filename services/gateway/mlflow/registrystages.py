"""MLflow's transition-stage as our RequestTransition.

- **Stages.** transition-stage is RequestTransition: the model's policy (the registry's only copy of the
  rule) decides. When it moves the version at once, the moved version is the answer. When the policy
  needs approvals, the request stays open and the answer is INVALID_STATE (400) naming the request id and
  the `modelog models approve` command another person runs. Moving to a stage the version is in is a
  no-op, as in MLflow; moving back to None is refused by the registry (archive instead).
  `archive_existing_versions` asks the registry to archive the other versions in the
  target stage once the move is done (each archive decided by the policy too); for Production the
  policy's own limit (default one version) archives the previous one when the approval lands.
"""

from __future__ import annotations

import shlex
from typing import Any

from eventlog.errors import FailedPrecondition, InvalidArgument
from modelog._gen.registry.v1 import registry_pb2 as pb
from modelog_services.gateway.mlflow.common import Body, Call
from modelog_services.gateway.mlflow.registryjson import STAGE_ENUM, STAGE_NAME, canonical_stage, version_json
from modelog_services.gateway.mlflow.registryreads import RegistryReads


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class StageHandlers(RegistryReads):
    async def transition_stage(self, call: Call) -> Body:
        name, number = call.text("name", required=True), self._number(call)
        stage = canonical_stage(call.text("stage", required=True))
        archive = _flag(call.fields.get("archive_existing_versions"))
        if archive and stage not in ("Staging", "Production"):
            raise InvalidArgument.field(
                "archive_existing_versions",
                f"only a move to Staging or Production archives others, not {stage}",
            )
        target = STAGE_ENUM[stage.lower()]
        ref = pb.VersionRef(model=name, version=number)
        request: pb.TransitionRequest | None = None
        version = await self._version(call, name, number)
        if version.stage != target:
            try:
                got = await call(
                    self.stub.RequestTransition,
                    pb.RequestTransitionRequest(
                        ref=ref, stage=target, comment="transition-stage (MLflow API)"
                    ),
                )
                request, version = got.request, got.version
            except InvalidArgument as err:
                if target != pb.STAGE_NONE:
                    raise
                raise InvalidArgument(
                    f"{err.message} (MLflow's None: in Modelog a version in {STAGE_NAME[version.stage]} "
                    "never moves back to no stage; move it to Archived instead)",
                    violations=err.violations,
                ) from None
            except FailedPrecondition:
                # A retry of a call whose answer was lost finds its own outcome: answer as it would have.
                version = await self._version(call, name, number)
                if version.HasField("open_request") and version.open_request.to_stage == target:
                    request = version.open_request
                elif version.stage != target:
                    raise
        if request is not None and request.status == pb.REQUEST_STATUS_OPEN:
            raise await self._awaiting(call, request)
        if archive:
            await self._archive_others(call, name, number, target)
        return {"model_version": version_json(version)}

    async def _archive_others(self, call: Call, name: str, number: int, stage: pb.Stage.ValueType) -> None:
        req = pb.SearchModelVersionsRequest(model=name, stage=stage)
        for other in await self._every(call, self.stub.SearchModelVersions, req, "versions"):
            if other.version != number:
                ref = pb.VersionRef(model=name, version=other.version)
                comment = f"archive_existing_versions: version {number} entered {STAGE_NAME[stage]}"
                await call(
                    self.stub.RequestTransition,
                    pb.RequestTransitionRequest(ref=ref, stage=pb.STAGE_ARCHIVED, comment=comment),
                )

    async def _awaiting(self, call: Call, r: pb.TransitionRequest) -> FailedPrecondition:
        m = await self._model(call, r.model)
        to = STAGE_NAME.get(r.to_stage, "?")
        policy = {
            "Staging": m.policy.staging,
            "Production": m.policy.production,
            "Archived": m.policy.archived,
        }[to]
        who = f"a {r.approver_role}" + (
            "" if policy.allow_self_approval else f" other than {r.requested_by!r}"
        )
        missing = r.approvals_required - len(r.approvals)
        approve = f"modelog models approve {shlex.quote(r.model)} {r.version} --request-id {r.request_id}"
        return FailedPrecondition(
            f"version {r.version} of model {r.model!r} stays in {STAGE_NAME.get(r.from_stage, '?')}: the "
            f"model's policy needs {r.approvals_required} approval(s) by {who} to enter {to}, so transition "
            f"request {r.request_id} was opened and waits for {missing} more. To approve it, run "
            f"`{approve}` with the approver's token (MODELOG_TOKEN); "
            f"`modelog models requests {shlex.quote(r.model)} --open` lists open requests, and "
            f"`modelog models cancel {shlex.quote(r.model)} {r.version}` withdraws this one.",
            metadata={"request_id": r.request_id, "model": r.model, "version": str(r.version)},
        )
