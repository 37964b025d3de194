"""The permission table: every RPC of every servicer, the permission it needs and what it acts on.

The interceptor enforces it before any handler runs (`modelog_platform.authz`); start-up fails if a
registered servicer has a method missing here. Deletes need EDIT (as members had before projects);
MANAGE is for policies and permissions; approvals are judged by the model's policy in the registry's
decider, on the permissions this table's check found. Cross-project views (raw logs, subscriptions,
the compliance export, lineage and timelines) need a role: project grants cover their own resources.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modelog_platform.authz import (
    DEFAULT_PROJECT,
    NEW_IN,
    PUBLIC,
    Extract,
    Perm,
    Resource,
    Rule,
    anywhere,
    on,
    platform,
)

READ, EDIT, MANAGE, APPROVE, ADMIN = Perm.READ, Perm.EDIT, Perm.MANAGE, Perm.APPROVE, Perm.ADMIN
LISTED = PUBLIC
"""Lists and searches: open to every caller, and each shows only what the caller may read (the
handler filters by `context.visible`), so a caller with no grant sees an empty list, not an error."""


def _one(kind: str, value: str) -> list[Resource]:
    return [Resource(kind, value)] if value else []


def project() -> Extract:
    """A create: the request's project (every create request has one; empty means default)."""
    return lambda r: [Resource("project", getattr(r, "project", "") or DEFAULT_PROJECT)]


def _creating_in(r: Any) -> Resource:
    return Resource(NEW_IN, r.project or DEFAULT_PROJECT)


def experiment(r: Any) -> Iterable[Resource]:
    if r.experiment_id:
        return [Resource("experiment", r.experiment_id)]
    return _one("experiment_name", getattr(r, "name", ""))


def start_run(r: Any) -> Iterable[Resource]:
    if r.experiment_id:
        return [Resource("experiment", r.experiment_id)]
    if r.experiment_name:
        # A run may create its experiment, in the request's project: EDIT there covers a new name.
        named = [Resource("experiment_name", r.experiment_name)]
        return [*named, _creating_in(r)] if r.create_experiment else named
    return [Resource("project", DEFAULT_PROJECT)]


def run(r: Any) -> Iterable[Resource]:
    return _one("run", r.run_id)


def runs(r: Any) -> Iterable[Resource]:
    return [Resource("run", i) for i in r.run_ids]


def experiments(r: Any) -> Iterable[Resource]:
    return [Resource("experiment", i) for i in r.experiment_ids]


def model(attr: str) -> Extract:
    return lambda r: _one("model", getattr(r, attr))


def model_ref(r: Any) -> Iterable[Resource]:
    return _one("model", r.ref.model)


def new_version(r: Any) -> Iterable[Resource]:
    """A version of an existing model, or of one it registers in the request's project."""
    named = _one("model", r.model)
    return [*named, _creating_in(r)] if r.create_model else named


def artifact(attr: str) -> Extract:
    return lambda r: _one("artifact", getattr(r, attr))


def commit(r: Any) -> Iterable[Resource]:
    """A version of an existing artifact, or the first of one in the request's project."""
    return [*_one("artifact", r.name), _creating_in(r)]


def artifact_ref(*attrs: str) -> Extract:
    return lambda r: [res for a in attrs for res in _one("artifact", getattr(r, a).name)]


def blobs(r: Any) -> Iterable[Resource]:
    return [Resource("blob", d) for d in dict.fromkeys(rg.digest for rg in r.ranges)]


def monitor(attr: str) -> Extract:
    return lambda r: _one("monitor", getattr(r, attr))


def grant_scope(r: Any) -> Iterable[Resource]:
    """Granting on a scope needs MANAGE there (on its project, or on the experiment or model)."""
    kind = {"experiment": "experiment", "model": "model"}.get(r.grant.scope_kind, "project")
    return _one(kind, r.grant.scope)


TABLE: dict[str, dict[str, Rule]] = {
    "modelog.admin.v1.Admin": {
        "ListProjections": platform(READ),
        "RebuildProjection": platform(ADMIN),
    },
    "modelog.identity.v1.Identity": {
        "CreateToken": platform(ADMIN),
        "ListTokens": platform(ADMIN),
        "RevokeToken": platform(ADMIN),
        "RotateToken": platform(ADMIN),
        "RotateOwnToken": PUBLIC,  # only ever the caller's own token (its actor in the context)
        "WhoAmI": PUBLIC,
    },
    "modelog.identity.v1.Access": {
        "CreateProject": platform(ADMIN),
        "ListProjects": PUBLIC,  # what the caller may read of
        "AddGrant": on(MANAGE, grant_scope),
        "RemoveGrant": on(MANAGE, grant_scope),
        "ListGrants": PUBLIC,  # the caller's own, or every grant for a role holder
        "AddGroupMember": platform(ADMIN),
        "RemoveGroupMember": platform(ADMIN),
        "ListGroups": platform(READ),
    },
    "modelog.eventlog.v1.EventLog": {
        "ListLogs": platform(READ),
        "ReadLog": platform(READ),
        "Tail": platform(READ),
        "Head": platform(READ),
        "Verify": platform(READ),
    },
    "modelog.tracking.v1.Tracking": {
        "CreateExperiment": on(EDIT, project()),
        "GetExperiment": on(READ, experiment),
        "ListExperiments": LISTED,
        "RenameExperiment": on(EDIT, experiment),
        "SetExperimentDescription": on(EDIT, experiment),
        "SetExperimentTags": on(EDIT, experiment),
        "DeleteExperimentTag": on(EDIT, experiment),
        "DeleteExperiment": on(EDIT, experiment),
        "RestoreExperiment": on(EDIT, experiment),
        "StartRun": on(EDIT, start_run),
        "LogParams": on(EDIT, run),
        "SetTags": on(EDIT, run),
        "DeleteTag": on(EDIT, run),
        "RenameRun": on(EDIT, run),
        "LogDatasetInput": on(EDIT, run),
        "LogMetrics": on(EDIT, run),
        "LogMetricsBatch": on(EDIT, run),
        "LogRunBatch": on(EDIT, run),
        "FinishRun": on(EDIT, run),
        "DeleteRun": on(EDIT, run),
        "RestoreRun": on(EDIT, run),
        "GetRun": on(READ, run),
        "SearchRuns": on(READ, experiments),
        "GetMetricHistory": on(READ, run),
        "GetMetricHistories": on(READ, runs),
        "CompareRuns": on(READ, runs),
    },
    "modelog.registry.v1.Registry": {
        "CreateModel": on(EDIT, project()),
        "GetModel": on(READ, model("name")),
        "SearchModels": LISTED,
        "RenameModel": on(EDIT, model("name")),
        "SetModelDescription": on(EDIT, model("name")),
        "SetModelTags": on(EDIT, model("name")),
        "DeleteModel": on(EDIT, model("name")),
        "RestoreModel": on(EDIT, model("name")),
        "SetPolicy": on(MANAGE, model("name")),
        "CreateModelVersion": on(EDIT, new_version),
        "GetModelVersion": on(READ, model_ref),
        "GetByAlias": on(READ, model("model")),
        "SearchModelVersions": on(READ, model("model")),
        "AnnotateVersion": on(EDIT, model_ref),
        "DeprecateVersion": on(EDIT, model_ref),
        "DeleteModelVersion": on(EDIT, model_ref),
        "SetAlias": on(EDIT, model("model")),
        "RemoveAlias": on(EDIT, model("model")),
        "RequestTransition": on(EDIT, model_ref),
        # Who may approve is the model's policy, per stage: the registry's decider judges it.
        "ApproveTransition": on(READ, model_ref),
        "RejectTransition": on(READ, model_ref),
        "CancelTransition": on(READ, model_ref),
        "ListTransitionRequests": on(READ, model("model")),
        "CommentOnVersion": on(EDIT, model_ref),
        "GetLineage": on(READ, model_ref),
        "History": on(READ, model("model")),
        "GetModelAsOf": on(READ, model("name")),
    },
    "modelog.artifacts.v1.Artifacts": {
        "HaveBlobs": anywhere(EDIT),
        "Upload": anywhere(EDIT),
        "Download": on(READ, blobs),
        "LocalStore": anywhere(EDIT),
        "IngestLocal": anywhere(EDIT),
        "CommitVersion": on(EDIT, commit),
        "GetVersion": on(READ, artifact_ref("ref")),
        "ListVersions": on(READ, artifact("name")),
        "ListArtifacts": LISTED,
        "DiffVersions": on(READ, artifact_ref("a", "b")),
        "SetAlias": on(EDIT, artifact("name")),
        "RemoveAlias": on(EDIT, artifact("name")),
        "TagVersion": on(EDIT, artifact_ref("ref")),
        "GarbageCollect": platform(ADMIN),
        "VerifyStore": platform(ADMIN),
    },
    "modelog.monitoring.v1.Monitoring": {
        "CreateMonitor": on(EDIT, project()),
        "GetMonitor": on(READ, monitor("name")),
        "ListMonitors": LISTED,
        "SetBaseline": on(EDIT, monitor("monitor")),
        "LogPredictions": on(EDIT, monitor("monitor")),
        "LogLabels": on(EDIT, monitor("monitor")),
        "CloseWindow": on(EDIT, monitor("monitor")),
        "ListWindows": on(READ, monitor("monitor")),
        "GetWindow": on(READ, monitor("monitor")),
        "ListAlerts": on(READ, monitor("monitor")),
        "ResolveAlert": on(EDIT, monitor("monitor")),
        "GetReport": on(READ, monitor("monitor")),
    },
    "modelog.audit.v1.Audit": {
        "Export": platform(READ),
        "PublicKey": PUBLIC,
        "Subscribe": platform(READ),
    },
    "modelog.audit.v1.Lineage": {
        "GetLineage": platform(READ),
        "Timeline": platform(READ),
    },
    "modelog.audit.v1.Webhooks": {
        name: platform(ADMIN)
        for name in (
            "CreateWebhook",
            "GetWebhook",
            "ListWebhooks",
            "UpdateWebhook",
            "DisableWebhook",
            "EnableWebhook",
            "DeleteWebhook",
            "ListDeliveries",
            "Redeliver",
            "TestWebhook",
        )
    },
}

_ = APPROVE  # granted, and judged by the registry's policy (see ApproveTransition)


def rules() -> dict[str, Rule]:
    """Full method name (`/package.Service/Method`) -> its rule."""
    return {
        f"/{service}/{method}": rule for service, methods in TABLE.items() for method, rule in methods.items()
    }
