"""`modelog projects|grants|groups` against `modelog up`: each with --json, and grants "as of"."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner, Result

import modelog
from modelog.cli import main
from tests.integration.test_registry_sdk import Server, server

__all__ = ["server"]


def cli(server: Server, user: str, *args: str) -> Result:
    """One CLI command as `user`. Commands share this process, and the SDK's default session would
    keep the first caller's token: each command gets a session of its own user, as a new process would."""
    modelog.connect(server.addr, server.tokens[user])
    env = {"MODELOG_URL": server.addr, "MODELOG_TOKEN": server.tokens[user], "MODELOG_HOME": str(server.home)}
    return CliRunner().invoke(main, list(args), env=env)


def ok(server: Server, user: str, *args: str) -> str:
    result = cli(server, user, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_projects_grants_and_groups_from_the_command_line(server: Server) -> None:
    server.user("gina", "none")
    before = datetime.now(UTC).isoformat()
    assert "created project vision" in ok(
        server, "admin", "projects", "create", "vision", "--description", "cv"
    )
    names = [p["name"] for p in json.loads(ok(server, "admin", "projects", "list", "--json"))]
    assert names == ["default", "vision"]
    # gina has no role: the projects she sees are the ones she holds a grant on.
    assert json.loads(ok(server, "gina", "projects", "list", "--json")) == []
    assert "granted gina EDIT on project vision" in ok(
        server, "admin", "grants", "add", "gina", "project", "vision", "edit"
    )
    assert "already granted" in ok(server, "admin", "grants", "add", "gina", "project", "vision", "EDIT")
    assert [p["name"] for p in json.loads(ok(server, "gina", "projects", "list", "--json"))] == ["vision"]

    ok(server, "admin", "groups", "add", "reviewers", "gina")
    ok(server, "admin", "grants", "add", "group:reviewers", "model", "detector", "APPROVE")
    assert json.loads(ok(server, "admin", "groups", "list", "--json")) == {"reviewers": ["gina"]}
    effective = json.loads(
        ok(server, "admin", "grants", "list", "--principal", "gina", "--effective", "--json")
    )
    assert {(g["principal"], g["permission"]) for g in effective} == {
        ("gina", "EDIT"),
        ("group:reviewers", "APPROVE"),
    }
    then = json.loads(
        ok(server, "admin", "grants", "list", "--principal", "gina", "--as-of", before, "--json")
    )
    assert then == []

    refused = cli(server, "gina", "grants", "add", "gina", "project", "default", "MANAGE")
    assert refused.exit_code == 1 and refused.stderr.startswith(
        "modelog: NOT_FOUND: project 'default' not found"
    )
    bad = cli(server, "admin", "grants", "add", "gina", "project", "vision", "OWN")
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1
    ok(server, "admin", "grants", "remove", "gina", "project", "vision", "EDIT")
    assert json.loads(ok(server, "gina", "projects", "list", "--json")) == []
