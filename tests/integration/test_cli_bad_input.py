"""Every CLI command, given hostile input against a real `modelog up`: it exits non-zero with one line
saying what is wrong, and never shows a traceback (issue 17)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from modelog.cli import main
from tests.integration.test_registry_sdk import Server, alice, server

__all__ = ["alice", "server"]

HOSTILE = "no-such-\x1b[31mthing\u202e"
# Start servers or follow a stream until Ctrl-C: their bad input is covered by their own tests.
LONG_RUNNING = {"up", "serve", "events tail", "audit subscribe", "monitor watch"}


def leaves(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from leaves(cmd, path)
        else:
            yield path, cmd


def hostile_args(cmd: click.Command) -> list[str]:
    args: list[str] = []
    for p in cmd.params:
        if isinstance(p, click.Argument):
            args.extend([HOSTILE] * (1 if p.nargs == 1 else 2))
        elif isinstance(p, click.Option) and p.required and not p.is_flag:
            args.extend([p.opts[0], HOSTILE])
    return args


COMMANDS = [(path, cmd) for path, cmd in leaves(main) if " ".join(path) not in LONG_RUNNING]


def invoke(server: Server, args: list[str], cwd: Path, within: float = 30) -> Result:
    env = {
        "MODELOG_URL": server.addr,
        "MODELOG_TOKEN": server.tokens["admin"],
        "MODELOG_HOME": str(server.home),
        "MODELOG_KAFKA_BOOTSTRAP": None,
    }
    box: list[Result] = []
    runner = CliRunner()

    def run() -> None:
        with contextlib.chdir(cwd):  # what a command writes stays in the test's directory
            box.append(runner.invoke(main, args, env=env))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(within)
    assert box, f"`modelog {' '.join(args)}` did not finish within {within}s"
    return box[0]


def test_every_command_is_swept() -> None:
    assert len(COMMANDS) >= 60, [" ".join(p) for p, _ in COMMANDS]


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_hostile_input_is_one_line_and_no_traceback(
    server: Server, path: tuple[str, ...], cmd: click.Command, tmp_path: Path
) -> None:
    args = [*path, *hostile_args(cmd)]
    result = invoke(server, args, tmp_path)
    shown = f"`modelog {' '.join(path)} ...` printed:\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{shown}\nraised {result.exception!r}"
    )
    assert "Traceback" not in result.output, shown
    if result.exit_code != 0:
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines, f"{shown}(nothing: a failure must say why)"
        errors = [line for line in lines if line.startswith(("modelog:", "Error:", "Usage:", "Try "))]
        assert errors, shown
        assert "\x1b[31m" not in result.output, f"{shown}\n(a terminal escape from the input came back raw)"
