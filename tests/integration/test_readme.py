"""The README's examples run as a user would run them, block by block, top to bottom.

One real `modelog up` (a temporary MODELOG_HOME, a free port, MODELOG_WEBHOOK_ALLOW=127.0.0.1 as the
webhook section says to start it) serves the whole module. Every ```sh block is pasted into one bash
session (`set -euo pipefail`; variables, exports, the directory and background jobs carry over, as in
a terminal), and every ```python block is saved to a file and run with the venv's `python` from that
session: each is a script of its own, as the README presents them. The session starts in an empty
git repository standing in for the user's checkout (the README's `git add` and
`infra/examples/webhook_receiver.py` assume one), with PATH, MODELOG_HOME and MODELOG_URL set the
way `source .venv/bin/activate` and a default `modelog up` would give them.

Blocks marked `<!-- readme-test: skip (why) -->` are reported as skipped with their line; any other
block must exit 0. A failure names the README line and shows the block and its output's tail.
The tests depend on each other in order: run the module whole, not one block with -k.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelog_platform.embedded import free_port
from tests.integration.readme_blocks import Block, Shell, failure_report, parse, tail
from tests.procs import MLFLOW_PYTHON, Up, env_for

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCKS = parse(README.read_text())
BLOCK_TIMEOUT_S = 60.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Up]]:
    home = tmp_path_factory.mktemp("readme-home")
    addr = f"127.0.0.1:{free_port()}"
    # The HTTP surface on MLflow's port, as the README's MLflow section says.
    up = Up(env_for(home, addr, MODELOG_WEBHOOK_ALLOW="127.0.0.1", MODELOG_HTTP_ADDR="127.0.0.1:5000"))
    try:
        try:
            up.wait_for("modelog ready on", 90)
        except AssertionError as exc:
            pytest.fail(f"modelog up did not start: {exc}", pytrace=False)
        yield home, addr, up
    finally:
        if up.proc.poll() is None:
            up.stop()


def _venv_bin() -> Path:
    venv = ROOT / ".venv" / "bin"
    return venv if (venv / "python").exists() else Path(sys.executable).parent


@pytest.fixture(scope="module")
def shell(stack: tuple[Path, str, Up], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    home, addr, _up = stack
    work = tmp_path_factory.mktemp("readme-work")
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "infra").symlink_to(ROOT / "infra")  # the checkout's examples, as the README links them
    env = env_for(home, addr)
    del env["MODELOG_ADDR"], env["MODELOG_HTTP_ADDR"]
    env.update(
        MODELOG_URL=addr,
        PATH=f"{_venv_bin()}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(_venv_bin().parent),
        PYTHONUNBUFFERED="1",
    )
    env.pop("PYTHONPATH", None)
    session = Shell(work, env, tmp_path_factory.mktemp("readme-blocks"), {"mlflow": str(MLFLOW_PYTHON)})
    yield session
    session.close()


def test_readme_has_runnable_blocks() -> None:
    runnable = [b for b in BLOCKS if b.kind and not b.skip]
    skipped = [b for b in BLOCKS if b.skip]
    print(f"README: {len(runnable)} blocks run, {len(skipped)} skipped:")
    for b in skipped:
        print(f"  line {b.line} ({b.language or 'text'}): {b.skip}")
    assert len(runnable) >= 10, "the README's examples are no longer found"
    assert len(skipped) <= len(runnable) // 2, "most README examples are marked skip"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language], ids=lambda b: b.id)
def test_readme_block(block: Block, shell: Shell, stack: tuple[Path, str, Up]) -> None:
    if block.skip:
        pytest.skip(f"README line {block.line}: {block.skip}")
    if block.kind is None:
        pytest.fail(
            f"README line {block.line}: a ```{block.language} block is neither run nor marked "
            "<!-- readme-test: skip (why) -->",
            pytrace=False,
        )
    up = stack[2]
    logged = len(up.output)
    outcome = shell.run(block, BLOCK_TIMEOUT_S)
    if outcome.returncode != 0:
        server = tail("".join(up.output[logged:]), 30)
        pytest.fail(f"{failure_report(block, outcome)}\n--- modelog up (tail)\n{server}", pytrace=False)
