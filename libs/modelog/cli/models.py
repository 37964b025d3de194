"""`modelog models ...`: registered models, versions, aliases, stage transitions with approvals."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from modelog._client import Connection
from modelog.asof import ModelAsOf, VersionAsOf, get_as_of
from modelog.cli.common import emit, grpc_errors, instant, plain, table, when
from modelog.registry import HistoryEntry, ModelVersion, Registry, TransitionRequest


@contextmanager
def _registry() -> Iterator[Registry]:
    with Connection() as conn:
        yield Registry(conn)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint=option)
        out[key] = value
    return out


def stage_text(stage: str | None) -> str:
    """MLflow's stage "None" means no stage: print that, not a word that reads like a missing value."""
    return stage if stage and stage != "None" else "(none)"


def _version_row(v: ModelVersion) -> dict[str, Any]:
    pending = v.open_request
    return {
        "version": v.version,
        "stage": stage_text(v.stage),
        "status": v.status,
        "aliases": ",".join(v.aliases),
        "run": v.run_id,
        "artifact": v.artifact,
        "pending": f"{stage_text(pending.to_stage)} ({len(pending.approvals)}/{pending.approvals_required})"
        if pending
        else None,
        "created": when(v.created_at),
        "by": v.created_by,
    }


def _request_text(r: TransitionRequest) -> str:
    if r.approvals_required == 0 and not r.approvals:
        approvals = "no approval needed (policy)"
    else:
        who = ", ".join(a.by for a in r.approvals) or "none yet"
        approvals = f"approvals {len(r.approvals)}/{r.approvals_required} ({who})"
    return (
        f"request {r.request_id}: {r.model}/{r.version} {stage_text(r.from_stage)} -> "
        f"{stage_text(r.to_stage)}, {r.status}, by {r.requested_by}; {approvals}"
    )


def _version_as_of_text(v: VersionAsOf) -> str:
    lines = [
        f"{v.ref}: {stage_text(v.stage)}, {v.status}"
        + (f", aliases {', '.join(v.aliases)}" if v.aliases else ""),
        f"  created by {v.created_by} at {when(v.created_at)} from run {v.run_id} and {v.artifact}",
    ]
    if v.stage_changed_by:
        approved = (
            f"approved by {', '.join(v.stage_approved_by)}"
            if v.stage_approved_by
            else "no approval needed (policy)"
        )
        lines.append(
            f"  entered {stage_text(v.stage)} at {when(v.stage_changed_at)} on {v.stage_changed_by}'s "
            f"decision; requested by {v.stage_requested_by or '-'}, {approved}"
        )
    lines += [f"  dataset {d['name']} {d['digest']} {d['context']}".rstrip() for d in v.datasets]
    if v.open_request_id:
        lines.append(f"  open request {v.open_request_id}")
    return "\n".join(lines)


def _as_of_text(m: ModelAsOf) -> str:
    head = f"{m.name} ({m.model_id}) as of {when(m.as_of)}{'  DELETED' if m.deleted else ''}"
    aliases = ", ".join(
        f"{a.alias} -> {a.version} (set by {a.set_by} at {when(a.set_at)})" for a in m.aliases.values()
    )
    production = ", ".join(map(str, m.production_versions)) or "-"
    return "\n".join(
        [
            head,
            f"last event: #{m.position} at {when(m.last_event_at)}",
            f"aliases: {aliases or '-'}",
            f"production: {production}",
            *(_version_as_of_text(v) for v in m.versions),
        ]
    )


@click.group()
def models() -> None:
    """Registered models: versions, aliases, stage transitions with approvals, lineage, history."""


@models.command("list")
@click.option("--name", "name_contains", default="", help="names containing this text")
@click.option("--tag", "tags", multiple=True, help="key=value; repeatable")
@click.option("--all", "include_deleted", is_flag=True, help="include deleted models")
@click.option(
    "--filter", "flt", default="", help="MLflow's grammar, e.g. \"name LIKE 'c%' OR tags.team = 'nlp'\""
)
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_list(
    name_contains: str, tags: tuple[str, ...], include_deleted: bool, flt: str, as_json: bool
) -> None:
    with _registry() as reg:
        found = reg.search_models(name_contains, _pairs(tags, "--tag"), include_deleted, filter=flt)
    rows = [
        {
            "name": m.name,
            "latest": m.latest_version,
            "production": ",".join(map(str, m.production_versions)),
            "aliases": ",".join(f"{a}->{v}" for a, v in sorted(m.aliases.items())),
            "deleted": m.deleted,
            "created": when(m.created_at),
        }
        for m in found
    ]
    emit(
        plain(found), as_json, table(rows, ["name", "latest", "production", "aliases", "deleted", "created"])
    )


@models.command("show")
@click.argument("ref")
@click.option("--as-of", "as_of", default=None, help="the model as it stood at this instant (ISO 8601)")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_show(ref: str, as_of: str | None, as_json: bool) -> None:
    """A model and its versions (`churn`), or one version (`churn/3`, `churn@champion`); with --as-of,
    as they stood then: which version held each alias and stage, who requested and approved it."""
    at = instant(as_of)
    if at is not None:
        with _registry() as reg:
            found = get_as_of(reg, ref, at)
        shown = _as_of_text(found) if isinstance(found, ModelAsOf) else _version_as_of_text(found)
        emit(plain(found), as_json, shown)
        return
    with _registry() as reg:
        if "/" in ref or "@" in ref:
            v = reg.get(ref)
            lines = [f"{k}: {'-' if val in (None, '') else val}" for k, val in _version_row(v).items()]
            if v.open_request:
                lines.append(_request_text(v.open_request))
            emit(
                plain(v),
                as_json,
                "\n".join([f"{v.ref}", *lines, *([v.description] if v.description else [])]),
            )
            return
        m = reg.model(ref)
        versions = reg.search_versions(model=ref)
    text = [
        f"{m.name} ({m.model_id}){'  DELETED' if m.deleted else ''}",
        *([m.description] if m.description else []),
        f"aliases: {', '.join(f'{a} -> {v}' for a, v in sorted(m.aliases.items())) or '-'}",
        f"policy: Production needs {m.policy['Production']['approvals_required']} approval(s) from "
        f"{m.policy['Production']['approver_role']}s; "
        f"at most {m.policy['max_production_versions']} in Production",
        table(
            [_version_row(v) for v in versions],
            ["version", "stage", "status", "aliases", "pending", "run", "by"],
        ),
    ]
    emit({**plain(m), "versions": plain(versions)}, as_json, "\n".join(text))


@models.command("versions")
@click.argument("model", required=False, default="")
@click.option("--stage", default=None, help="None, Staging, Production or Archived")
@click.option("--alias", default="")
@click.option("--run", "run_id", default="")
@click.option("--tag", "tags", multiple=True, help="key=value; repeatable")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_versions(
    model: str, stage: str | None, alias: str, run_id: str, tags: tuple[str, ...], as_json: bool
) -> None:
    """Search versions (of one model, or of all) by stage, alias, run or tag."""
    with _registry() as reg:
        found = reg.search_versions(
            model, stage=stage, alias=alias, run_id=run_id, tags=_pairs(tags, "--tag")
        )
    rows = [{"model": v.model, **_version_row(v)} for v in found]
    emit(
        plain(found),
        as_json,
        table(rows, ["model", "version", "stage", "status", "aliases", "run", "created"]),
    )


@models.command("history")
@click.argument("model")
@click.option("--version", type=int, default=0, help="only events about this version")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_history(model: str, version: int, as_json: bool) -> None:
    """Every decision about a model, oldest first, with who made it."""
    with _registry() as reg:
        entries: list[HistoryEntry] = reg.history(model, version)
    lines = [f"{when(e.recorded_at)}  #{e.position:<7} {e.summary}" for e in entries]
    emit(plain(entries), as_json, "\n".join(lines) or "(no events)")


@models.command("lineage")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_lineage(ref: str, as_json: bool) -> None:
    """What a version was made from: run, params, final metrics, datasets, artifact manifest digest."""
    with _registry() as reg:
        v = reg.get(ref)
        lin = v.lineage()
    text = [
        f"{v.ref}: run {lin.run_id} ({lin.run_name}, {lin.run_status}) in experiment {lin.experiment_id}",
        f"artifact {lin.artifact}: {lin.file_count} files, {lin.total_size} bytes, "
        f"manifest {lin.manifest_digest}",
        "params: " + (", ".join(f"{k}={val}" for k, val in sorted(lin.params.items())) or "-"),
        "metrics: " + (", ".join(f"{k}={val:.6g}" for k, val in sorted(lin.metrics.items())) or "-"),
        *(f"dataset {d['name']} {d['digest']} {d['context']} {d['source']}".rstrip() for d in lin.datasets),
    ]
    emit(plain(lin), as_json, "\n".join(text))


@models.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option("--tag", "tags", multiple=True, help="key=value; repeatable")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_create(name: str, description: str, tags: tuple[str, ...], as_json: bool) -> None:
    with _registry() as reg:
        m = reg.create(name, description, _pairs(tags, "--tag"))
    emit(plain(m), as_json, f"registered model {m.name} ({m.model_id})")


@models.command("register")
@click.argument("name")
@click.option(
    "--artifact", required=True, help="the model package: name:3 (a version), name@alias or name (the latest)"
)
@click.option("--run", "run_id", default=None, help="the run that produced it (default: the artifact's run)")
@click.option("--description", default="")
@click.option("--framework", default="")
@click.option("--tag", "tags", multiple=True, help="key=value; repeatable")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_register(
    name: str,
    artifact: str,
    run_id: str | None,
    description: str,
    framework: str,
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """A new version of model NAME (registered if new) from an artifact version."""
    with _registry() as reg:
        v = reg.register(
            run_id, artifact, name, description=description, framework=framework, tags=_pairs(tags, "--tag")
        )
    emit(plain(v), as_json, f"registered {v.ref} from run {v.run_id} and {v.artifact}")


@models.command("alias")
@click.argument("model")
@click.argument("version", type=int)
@click.argument("alias")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_alias(model: str, version: int, alias: str, as_json: bool) -> None:
    """Point ALIAS at VERSION of MODEL (moving it if it points elsewhere)."""
    with _registry() as reg:
        v = reg.get(f"{model}/{version}").set_alias(alias)
    emit(plain(v), as_json, f"{model}@{alias} -> {version}")


@models.command("unalias")
@click.argument("model")
@click.argument("alias")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_unalias(model: str, alias: str, as_json: bool) -> None:
    with _registry() as reg:
        version = reg.remove_alias(model, alias)
    emit(
        {"model": model, "alias": alias, "version": version, "removed": True},
        as_json,
        f"removed {model}@{alias} (it pointed at version {version})",
    )


@models.command("request")
@click.argument("model")
@click.argument("version", type=int)
@click.argument("stage")
@click.option("--comment", "-m", default="")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_request(model: str, version: int, stage: str, comment: str, as_json: bool) -> None:
    """Request moving VERSION of MODEL to STAGE (Staging, Production, Archived)."""
    with _registry() as reg:
        v = reg.get(f"{model}/{version}")
        r = v.request_transition(stage, comment)
    done = f"; {v.ref} is now in {stage_text(v.stage)}" if r.status == "APPROVED" else ""
    emit(plain(r), as_json, _request_text(r) + done)


def _review(model: str, version: int, verb: str, comment: str, request_id: str, as_json: bool) -> None:
    with _registry() as reg:
        v = reg.get(f"{model}/{version}")
        if verb == "approve":
            v.approve(comment, request_id)
            still = v.open_request
            wait = (
                f"; {stage_text(still.to_stage)} waits for more approvals ({len(still.approvals)}/"
                if still
                else ""
            )
            wait += f"{still.approvals_required})" if still else ""
            emit(plain(v), as_json, f"approved; {v.ref} is in {stage_text(v.stage)}{wait}")
            return
        r = v.reject(comment, request_id) if verb == "reject" else v.cancel_request(comment, request_id)
    emit(plain(r), as_json, _request_text(r))


@models.command("approve")
@click.argument("model")
@click.argument("version", type=int)
@click.option("--comment", "-m", default="")
@click.option("--request-id", default="", help="default: the version's open request")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_approve(model: str, version: int, comment: str, request_id: str, as_json: bool) -> None:
    """Approve the open transition request of VERSION of MODEL."""
    _review(model, version, "approve", comment, request_id, as_json)


@models.command("reject")
@click.argument("model")
@click.argument("version", type=int)
@click.option("--comment", "-m", default="")
@click.option("--request-id", default="")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_reject(model: str, version: int, comment: str, request_id: str, as_json: bool) -> None:
    _review(model, version, "reject", comment, request_id, as_json)


@models.command("cancel")
@click.argument("model")
@click.argument("version", type=int)
@click.option("--comment", "-m", default="")
@click.option("--request-id", default="")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_cancel(model: str, version: int, comment: str, request_id: str, as_json: bool) -> None:
    """Withdraw a transition request (its requester or an admin)."""
    _review(model, version, "cancel", comment, request_id, as_json)


@models.command("requests")
@click.argument("model")
@click.option("--version", type=int, default=0)
@click.option("--open", "open_only", is_flag=True, help="only open requests")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_requests(model: str, version: int, open_only: bool, as_json: bool) -> None:
    with _registry() as reg:
        found = reg.requests(model, version, open_only)
    emit(plain(found), as_json, "\n".join(_request_text(r) for r in found) or "(none)")


@models.command("policy")
@click.argument("model")
@click.option("--stage", default=None, help="the stage whose rule to change: Staging, Production or Archived")
@click.option("--approvals", type=click.IntRange(0, 10), default=0)
@click.option("--role", "approver_role", type=click.Choice(["member", "admin"]), default="member")
@click.option("--from", "from_stages", multiple=True, help="a stage versions may come from; repeatable")
@click.option("--self-approval", is_flag=True, help="let requesters approve their own requests")
@click.option(
    "--max-production", type=click.IntRange(0, 100), default=0, help="versions allowed in Production"
)
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_policy(
    model: str,
    stage: str | None,
    approvals: int,
    approver_role: str,
    from_stages: tuple[str, ...],
    self_approval: bool,
    max_production: int,
    as_json: bool,
) -> None:
    """Show MODEL's approval policy, or change one stage's rule and/or the Production limit (admin)."""
    with _registry() as reg:
        if stage is None and not max_production:
            m = reg.model(model)
        else:
            if stage is not None and not from_stages:
                raise click.UsageError("--stage needs at least one --from stage")
            m = reg.set_policy(
                model,
                stage,
                approvals=approvals,
                approver_role=approver_role,
                from_stages=from_stages,
                allow_self_approval=self_approval,
                max_production_versions=max_production,
            )
    lines = [
        f"{s}: {p['approvals_required']} approval(s) from {p['approver_role']}s, "
        f"from {'/'.join(p['from_stages'])}" + (", self-approval allowed" if p["allow_self_approval"] else "")
        for s, p in m.policy.items()
        if isinstance(p, dict)
    ]
    emit(
        m.policy, as_json, "\n".join([*lines, f"at most {m.policy['max_production_versions']} in Production"])
    )


@models.command("deprecate")
@click.argument("model")
@click.argument("version", type=int)
@click.option("--reason", default="")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_deprecate(model: str, version: int, reason: str, as_json: bool) -> None:
    with _registry() as reg:
        v = reg.get(f"{model}/{version}").deprecate(reason)
    emit(plain(v), as_json, f"{v.ref} is {v.status}")


@models.command("download")
@click.argument("ref")
@click.argument("target", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def models_download(ref: str, target: str, as_json: bool) -> None:
    """Write the files of a version (`churn@champion`, `churn/3`) under TARGET."""
    with _registry() as reg:
        v = reg.get(ref)
        path = v.download(target)
    emit({**plain(v), "path": str(path)}, as_json, f"{v.ref} ({v.artifact}) -> {path}")
