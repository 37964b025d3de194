"""Every way a `modelog` command can fail is one line on stderr, `modelog: <STATUS>: <message>`, with a
non-zero exit code: click's usage errors too, and a bug. No server is needed for any of these."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner, Result

from modelog.cli import main


def run(*args: str, cli: click.Command = main) -> Result:
    # A port nothing listens on: none of these may get as far as calling a server.
    return CliRunner().invoke(cli, list(args), env={"MODELOG_URL": "127.0.0.1:9", "MODELOG_TOKEN": "t"})


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["models", "show", "churn", "--as-of", "x"],
            "modelog: INVALID_ARGUMENT: --as-of: 'x' is not an ISO 8601 time (2026-03-01T00:00:00Z) "
            "(see `modelog models show --help`)",
        ),
        (
            ["runs", "show"],
            "modelog: INVALID_ARGUMENT: Missing argument 'RUN_ID' (see `modelog runs show --help`)",
        ),
        (
            ["runs", "list", "-e", "churn", "--max", "many"],
            "modelog: INVALID_ARGUMENT: --max: 'many' is not a valid integer "
            "(see `modelog runs list --help`)",
        ),
        (["nosuch"], "modelog: INVALID_ARGUMENT: No such command 'nosuch' (see `modelog --help`)"),
        (
            ["audit", "export", "--out", "x.bundle", "--from", "soon"],
            "modelog: INVALID_ARGUMENT: --from: 'soon' is not an ISO 8601 time (2026-03-01T00:00:00Z) "
            "(see `modelog audit export --help`)",
        ),
        (
            ["webhooks", "redeliver", "wh1"],
            "modelog: INVALID_ARGUMENT: give --delivery ID or --from CURSOR "
            "(see `modelog webhooks redeliver --help`)",
        ),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args: list[str], line: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == line + "\n"


def test_a_bug_is_one_line_not_a_traceback() -> None:
    @click.group(cls=type(main))  # whatever makes `modelog` itself one line per error
    def cli() -> None:
        pass

    @cli.command()
    def boom() -> None:
        raise RuntimeError("the cache is inconsistent")

    result = run("boom", cli=cli)
    assert result.exit_code == 1
    assert result.stderr == "modelog: INTERNAL: RuntimeError: the cache is inconsistent\n"


def test_help_and_version_still_exit_0() -> None:
    assert run("--help").exit_code == 0 and "Usage: modelog" in run("--help").stdout
    assert run("runs", "show", "--help").exit_code == 0
    assert run("--version").exit_code == 0
