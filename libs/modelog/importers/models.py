"""Registered models, versions (their files brought along), stages and aliases, as imported history.

MLflow keeps only a version's current stage: it becomes one transition at the version's last update,
made under a policy that moves at once (set for the import, then put back; both visible in the audit
trail as the importer's own acts). A version back in None at the source stays where it is here.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from modelog._client import headers
from modelog._gen.artifacts.v1 import artifacts_pb2 as apb
from modelog._gen.registry.v1 import registry_pb2 as rpb
from modelog.errors import AlreadyExists, FailedPrecondition, ModelogError, NotFound
from modelog.importers.context import ImportContext
from modelog.importers.source import Model, Version

STAGES = {"staging": rpb.STAGE_STAGING, "production": rpb.STAGE_PRODUCTION, "archived": rpb.STAGE_ARCHIVED}
SOURCE_TAG = "modelog.mlflow.source"  # as the MLflow gateway tags a version's source (registry.py)
IMPORTED_SOURCE_TAG = "modelog.import.source"


class ModelImports(ImportContext):
    def _model(self, m: Model) -> None:
        try:
            versions = self._timed(lambda: list(self.source.versions(m)))
            self.summary.seen.versions += len(versions)
            if self.dry_run:
                return
            if not self.state.get("model", m.source_id):
                try:
                    self.registry.CreateModel(
                        rpb.CreateModelRequest(name=m.name, description=m.description, tags=m.tags),
                        metadata=self._md("model", m.source_id, "create", m.created_ms),
                    )
                    self._add(self.summary.written, models=1)
                except AlreadyExists:
                    pass  # made by an earlier, interrupted import (or by hand): versions join it
                self.state.put("model", m.source_id, m.name)
            numbers: dict[int, int] = {}
            for v in versions:
                try:
                    numbers[v.number] = self._version(m, v)
                except _Unmappable as exc:
                    with self._lock:
                        self.summary.skipped.append(f"model {m.name} version {v.number}: {exc}")
                except (ModelogError, OSError, ValueError) as exc:
                    self._fail(f"model {m.name} version {v.number}", exc)
            self._stages(m, versions, numbers)
            for alias, number in sorted(m.aliases.items()):
                target = numbers.get(int(number))
                if target is None:
                    continue
                if self.state.get("alias", f"{m.source_id}@{alias}") == str(target):
                    continue
                try:
                    self.registry.SetAlias(
                        rpb.SetAliasRequest(model=m.name, alias=alias, version=target),
                        metadata=self._md("model", m.source_id, f"alias-{alias}-{target}", m.updated_ms),
                    )
                    self.state.put("alias", f"{m.source_id}@{alias}", str(target))
                except ModelogError as exc:
                    self._fail(f"model {m.name} alias {alias}", exc)
        except (ModelogError, OSError, ValueError) as exc:
            self._fail(f"model {m.name}", exc)

    def _version(self, m: Model, v: Version) -> int:
        sid = f"{m.source_id}/{v.number}"
        known = self.state.get("version", sid)
        if known:
            return int(known)
        if not v.run_id:
            raise _Unmappable("a Modelog version is made from a run, and the source links none to it")
        run_id = self.state.get("run", v.run_id)
        if not run_id:
            raise NotFound(
                f"its run {v.run_id or '(none)'} was not imported (widen --experiments to include it)"
            )
        md = self._md("version", sid, "create", v.created_ms, v.user)
        name = "mlflow-source-" + hashlib.sha256(f"{self.source.label}\0{sid}".encode()).hexdigest()[:24]
        with tempfile.TemporaryDirectory(prefix="modelog-import-") as tmp:
            root = Path(tmp)
            count, size = self._download(
                self._timed(lambda: iter(list(self.source.version_files(v)))),
                lambda p: self.source.open_version_file(v, p),
                root,
            )
            self._add(self.summary.seen, files=count, bytes=size)
            if count:
                art = self._commit(root, name, "model", run_id, {"mlflow.source": v.source}, md)
            else:  # files the source does not serve: a reference, as the MLflow gateway makes
                with headers(md[:-1]):
                    art = self.artifacts.CommitVersion(
                        apb.CommitVersionRequest(
                            name=name,
                            kind="model",
                            run_id=run_id,
                            tags={"mlflow.source": v.source},
                            message=f"MLflow model source {v.source} (the files stay at the source)",
                        )
                    ).version
        request = rpb.CreateModelVersionRequest(
            model=m.name,
            run_id=run_id,
            artifact=rpb.ArtifactRef(name=art.name, version=art.version),
            description=v.description,
            tags={**v.tags, **_source_tags(v.source, run_id)},
        )
        got = self.registry.CreateModelVersion(request, metadata=md)
        self._add(self.summary.written, versions=1)
        self.state.put("version", sid, str(got.version.version))
        return int(got.version.version)

    def _stages(self, m: Model, versions: list[Version], numbers: dict[int, int]) -> None:
        # A version back in None at the source stays where it is here (the registry archives instead).
        moves: list[tuple[Version, rpb.Stage.ValueType]] = []
        for v in versions:
            stage = STAGES.get(v.stage.lower())
            sid = f"{m.source_id}/{v.number}"
            if stage is not None and v.number in numbers and self.state.get("stage", sid) != v.stage:
                moves.append((v, stage))
        if not moves:
            return
        model = self.registry.GetModel(rpb.GetModelRequest(name=m.name)).model
        original = model.policy
        every = (rpb.STAGE_NONE, rpb.STAGE_STAGING, rpb.STAGE_PRODUCTION, rpb.STAGE_ARCHIVED)
        role = original.production.approver_role or "approver"

        def at_once(to: rpb.Stage.ValueType) -> rpb.StagePolicy:
            return rpb.StagePolicy(
                approvals_required=0, approver_role=role, from_stages=[s for s in every if s != to]
            )

        permissive = rpb.ModelPolicy(
            staging=at_once(rpb.STAGE_STAGING),
            production=at_once(rpb.STAGE_PRODUCTION),
            archived=at_once(rpb.STAGE_ARCHIVED),
            max_production_versions=max(original.max_production_versions or 1, len(versions)),
        )
        self.registry.SetPolicy(rpb.SetPolicyRequest(name=m.name, policy=permissive))
        try:
            for v, stage in sorted(moves, key=lambda x: x[0].updated_ms or 0):
                sid = f"{m.source_id}/{v.number}"
                try:
                    self.registry.RequestTransition(
                        rpb.RequestTransitionRequest(
                            ref=rpb.VersionRef(model=m.name, version=numbers[v.number]),
                            stage=stage,
                            comment=f"imported: {v.stage} in {self.source.label}",
                        ),
                        metadata=self._md(
                            "version", sid, f"stage-{v.stage}-{v.updated_ms}", v.updated_ms, v.user
                        ),
                    )
                except FailedPrecondition as exc:
                    if "already in" not in exc.message:
                        raise
                self.state.put("stage", sid, v.stage)
        finally:
            self.registry.SetPolicy(rpb.SetPolicyRequest(name=m.name, policy=original))


class _Unmappable(Exception):
    """A source fact with no place in Modelog's model: skipped and said so, not retried."""


def _source_tags(source: str, run_id: str) -> dict[str, str]:
    """A `runs:/` source names the imported run (whose files came along), so MLflow clients reading
    through the gateway find them; any other source is kept as a note of where the files were."""
    if source.startswith("runs:/"):
        _, _, path = source[len("runs:/") :].lstrip("/").partition("/")
        return {SOURCE_TAG: f"runs:/{run_id}/{path}", IMPORTED_SOURCE_TAG: source}
    return {IMPORTED_SOURCE_TAG: source}
