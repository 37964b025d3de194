"""`modelog projects|grants|groups`: who may read, change, manage or approve what (admin, or MANAGE)."""

from __future__ import annotations

import click

from modelog.cli.common import emit, grpc_errors, instant, table

SCOPES = click.Choice(["project", "experiment", "model"])
PERMISSIONS = click.Choice(["READ", "EDIT", "MANAGE", "APPROVE"], case_sensitive=False)


@click.group()
def projects() -> None:
    """Projects own experiments, models, artifacts and monitors ("default" holds the rest)."""


@projects.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def projects_create(name: str, description: str, as_json: bool) -> None:
    from modelog import access

    p = access.create_project(name, description)
    emit(p.as_dict(), as_json, f"created project {p.name}")


@projects.command("list")
@click.option("--as-of", help="the projects that existed at this instant (ISO 8601)")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def projects_list(as_of: str | None, as_json: bool) -> None:
    from modelog import access

    found = access.projects(as_of=instant(as_of))
    rows = [p.as_dict() for p in found]
    emit(rows, as_json, table(rows, ["name", "description", "created_by", "created_at"]))


@click.group()
def grants() -> None:
    """READ, EDIT, MANAGE or APPROVE on a project, an experiment (by id) or a model (by name)."""


def _grant_args(fn: click.decorators.FC) -> click.decorators.FC:
    fn = click.argument("permission", type=PERMISSIONS)(fn)
    fn = click.argument("scope")(fn)
    fn = click.argument("scope_kind", metavar="KIND", type=SCOPES)(fn)
    return click.argument("principal")(fn)


@grants.command("add")
@_grant_args
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def grants_add(principal: str, scope_kind: str, scope: str, permission: str, as_json: bool) -> None:
    """PRINCIPAL (a token name or group:NAME) gets PERMISSION on KIND SCOPE."""
    from modelog import access

    changed = access.grant(principal, scope_kind, scope, permission)
    what = f"{principal} {permission.upper()} on {scope_kind} {scope}"
    emit({"changed": changed}, as_json, f"granted {what}" if changed else f"{what}: already granted")


@grants.command("remove")
@_grant_args
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def grants_remove(principal: str, scope_kind: str, scope: str, permission: str, as_json: bool) -> None:
    from modelog import access

    access.revoke(principal, scope_kind, scope, permission)
    emit({"removed": True}, as_json, f"removed {principal} {permission.upper()} on {scope_kind} {scope}")


@grants.command("list")
@click.option("--principal", default="", help="a token name or group:NAME")
@click.option("--kind", "scope_kind", type=SCOPES)
@click.option("--scope", default="")
@click.option("--effective", is_flag=True, help="with --principal TOKEN: also what its groups hold")
@click.option("--as-of", help="the grants in force at this instant (ISO 8601)")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def grants_list(
    principal: str, scope_kind: str | None, scope: str, effective: bool, as_of: str | None, as_json: bool
) -> None:
    """Who could do what: `modelog grants list --kind model --scope churn --as-of 2026-03-01T00:00:00Z`."""
    from modelog import access

    found = access.grants(
        principal=principal,
        scope_kind=scope_kind or "",
        scope=scope,
        as_of=instant(as_of),
        effective=effective,
    )
    rows = [g.as_dict() for g in found]
    emit(rows, as_json, table(rows, ["principal", "scope_kind", "scope", "permission"]))


@click.group()
def groups() -> None:
    """Groups of tokens: a grant to group:NAME reaches every member."""


@groups.command("add")
@click.argument("group")
@click.argument("token")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def groups_add(group: str, token: str, as_json: bool) -> None:
    from modelog import access

    changed = access.add_to_group(group, token)
    emit({"changed": changed}, as_json, f"{token} is in {group}" + ("" if changed else " (already)"))


@groups.command("remove")
@click.argument("group")
@click.argument("token")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def groups_remove(group: str, token: str, as_json: bool) -> None:
    from modelog import access

    access.remove_from_group(group, token)
    emit({"removed": True}, as_json, f"{token} left {group}")


@groups.command("list")
@click.option("--as-of", help="the members at this instant (ISO 8601)")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def groups_list(as_of: str | None, as_json: bool) -> None:
    from modelog import access

    found = access.groups(as_of=instant(as_of))
    rows = [{"group": g, "members": ", ".join(m)} for g, m in found.items()]
    emit(found, as_json, table(rows, ["group", "members"]))
