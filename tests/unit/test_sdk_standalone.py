"""The SDK ships on its own: every module of `modelog` (the CLI included) imports, and every command
shows its help, in a process where the server's packages cannot be imported at all.

Only the bodies of the commands that run server code in this process (`modelog up`, `modelog serve`,
the re-delivery of `events replay --to-topic/--to-webhook`) import it, when they run.
"""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_PACKAGES = ("eventlog", "modelog_platform", "modelog_services")

PROBE = r"""
import importlib, importlib.abc, json, pkgutil, sys

BLOCKED = frozenset(sys.argv[1].split(","))


class ServerCode(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is server code, which the SDK must not import")
        return None


sys.meta_path.insert(0, ServerCode())
failures, names = [], []
blocked_works = False
try:
    import eventlog  # noqa: F401
except ImportError:
    blocked_works = True


def walk(package):
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if info.name == "modelog._gen" or info.name.endswith(".__main__"):
            continue  # generated stubs are not ours to check; __main__ runs the CLI
        names.append(info.name)
        try:
            module = importlib.import_module(info.name)
        except Exception as exc:
            failures.append(f"{info.name}: {type(exc).__name__}: {exc}")
            continue
        if info.ispkg:
            walk(module)


import modelog

walk(modelog)
for name in modelog.__all__:  # the lazily imported names of the package itself
    try:
        getattr(modelog, name)
    except Exception as exc:
        failures.append(f"modelog.{name}: {type(exc).__name__}: {exc}")

import click
from click.testing import CliRunner
from modelog.cli import main


def commands(group, path):
    yield path
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            yield from commands(command, [*path, name])


runner = CliRunner()
for path in commands(main, []):
    result = runner.invoke(main, [*path, "--help"])
    if result.exit_code != 0:
        said = f"exit {result.exit_code}: {result.output!r} {result.exception!r}"
        failures.append(f"modelog {' '.join(path)} --help: {said}")
    names.append("modelog " + " ".join(path))

loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
print(json.dumps({"blocked_works": blocked_works, "names": names, "failures": failures, "loaded": loaded}))
"""


def test_every_sdk_module_and_cli_command_loads_without_the_server_packages() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(SERVER_PACKAGES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["blocked_works"], "the probe must really hide the server packages"
    assert "modelog.cli.data" in report["names"] and "modelog.shared.errors" in report["names"]
    assert "modelog data add" in report["names"] and "modelog up" in report["names"]
    assert report["failures"] == []
    assert report["loaded"] == []
