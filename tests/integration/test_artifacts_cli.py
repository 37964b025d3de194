"""The DVC-like workflow through the CLI: add, status, diff, log, alias, pull by pointer file, gc."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from modelog.cli import main
from modelog.cli.data import data, gc_command
from tests.integration.test_artifacts_stack import ArtifactStack, read_tree, stack, tree

pytestmark = pytest.mark.asyncio
__all__ = ["stack"]


@click.group()
def cli() -> None:
    """What `modelog` looks like with the data group and `admin gc` registered."""


admin = click.Group("admin")
admin.add_command(gc_command)
cli.add_command(data)
cli.add_command(admin)


async def run(s: ArtifactStack, *args: str) -> Result:
    env = {"MODELOG_URL": s.url, "MODELOG_TOKEN": s.admin}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env, catch_exceptions=False)


def out(result: Result) -> Any:
    return json.loads(result.stdout)


async def test_the_data_workflow_round_trips_through_a_pointer_file(
    stack: ArtifactStack, tmp_path: Path
) -> None:
    work = tree(
        tmp_path / "data", {"train.csv": b"a,b\n1,2\n", "img/0.png": b"\x89PNG0", "img/1.png": b"\x89PNG1"}
    )
    v1_files = read_tree(work)
    added = await run(stack, "data", "add", str(work), "--name", "ds", "-m", "first", "--json")
    assert added.exit_code == 0, added.output
    assert out(added)["version"] == 1 and out(added)["created"]
    pointer = tmp_path / "data.modelog"
    v1_pointer = pointer.read_text()
    assert json.loads(v1_pointer)["artifact"] == "ds" and json.loads(v1_pointer)["version"] == 1

    again = await run(stack, "data", "add", str(work), "--json")  # the name comes from the pointer
    assert out(again)["version"] == 1 and not out(again)["created"]

    clean = await run(stack, "data", "status", str(work), "--json")
    assert clean.exit_code == 0 and out(clean)["clean"]
    (work / "train.csv").write_bytes(b"a,b\n1,2\n3,4\n")
    (work / "img" / "1.png").unlink()
    (work / "notes.md").write_bytes(b"new")
    dirty = await run(stack, "data", "status", str(work), "--json")
    assert dirty.exit_code == 3
    assert (out(dirty)["added"], out(dirty)["removed"], out(dirty)["modified"]) == (
        ["notes.md"],
        ["img/1.png"],
        ["train.csv"],
    )
    v2 = await run(stack, "data", "add", str(work), "-m", "second", "--json")
    assert out(v2)["version"] == 2

    diff = await run(stack, "data", "diff", "ds:1", "ds/2", "--json")
    assert [c["path"] for c in out(diff)["added"]] == ["notes.md"]
    assert [c["path"] for c in out(diff)["removed"]] == ["img/1.png"]
    assert [c["path"] for c in out(diff)["modified"]] == ["train.csv"]
    text = await run(stack, "data", "diff", "ds:1", "ds@latest")
    assert "M train.csv" in text.stdout
    # The old spelling of a version still works, and `modelog` says once what to write instead.
    env = {"MODELOG_URL": stack.url, "MODELOG_TOKEN": stack.admin}
    old = await asyncio.to_thread(CliRunner().invoke, main, ["data", "diff", "ds@1", "ds:2"], env=env)
    assert old.exit_code == 0 and "M train.csv" in old.stdout
    assert old.stderr.strip() == "warning: 'ds@1': write 'ds:1' (the old artifact spelling)"

    log = await run(stack, "data", "log", "ds", "--json")
    assert [(r["version"], r["message"]) for r in out(log)] == [(2, "second"), (1, "first")]
    alias = await run(stack, "data", "alias", "ds:1", "prod", "--json")
    assert out(alias)["version"] == 1
    assert (await run(stack, "data", "log", "ds", "--json")).stdout.count('"prod"') == 1

    # `git checkout` of the old pointer, then pull: the tree is v1 again, byte for byte.
    pointer.write_text(v1_pointer)
    pulled = await run(stack, "data", "pull", str(pointer), "--json")
    assert pulled.exit_code == 0, pulled.output
    assert read_tree(work) == v1_files
    assert (await run(stack, "data", "status", str(work))).exit_code == 0

    elsewhere = await run(stack, "data", "pull", "ds@prod", str(tmp_path / "copy"))
    assert elsewhere.exit_code == 0 and read_tree(tmp_path / "copy") == v1_files

    gc = await run(stack, "admin", "gc", "--grace", "0", "--json")
    assert gc.exit_code == 0 and out(gc)["collected_blobs"] == 0 and out(gc)["kept_blobs"] > 0


async def test_errors_are_one_line_with_a_failing_exit_code(stack: ArtifactStack, tmp_path: Path) -> None:
    missing = await run(stack, "data", "pull", "nope:1", str(tmp_path / "x"))
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "modelog: NOT_FOUND: no artifact named 'nope'"
    bad = await run(stack, "data", "diff", "ds:1", "../ds")
    assert bad.exit_code == 1 and bad.stderr.startswith("modelog: INVALID_ARGUMENT: ")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    work = tree(tmp_path / "w", {"a.txt": b"a"})
    (work / "link.txt").symlink_to(outside)
    refused = await run(stack, "data", "add", str(work), "--name", "w")
    assert refused.exit_code == 1 and "outside the tree" in refused.stderr
    assert not (tmp_path / "w.modelog").exists()
    usage = await run(stack, "data", "add")
    assert usage.exit_code == 2
