"""The README promises `--json` on every command: walk the whole command tree and hold it to that."""

from __future__ import annotations

from collections.abc import Iterator

import click

from modelog.cli import main

RUN_SERVERS = {"modelog up", "modelog serve"}
"""They run the platform until stopped; they print logs, not a result."""


def leaves(command: click.Command, path: str = "modelog") -> Iterator[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from leaves(sub, f"{path} {name}")
    else:
        yield path, command


def test_every_command_takes_json() -> None:
    found = dict(leaves(main))
    assert len(found) > 60  # the walk reached every group
    lacking = [
        path
        for path, command in found.items()
        if path not in RUN_SERVERS
        and not any(isinstance(p, click.Option) and "--json" in p.opts for p in command.params)
    ]
    assert lacking == []
