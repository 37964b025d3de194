"""The README's fenced code blocks, in order, and a shell that runs them as a user pastes them.

A block is skipped only when the line just before it (blank lines aside) is a marker such as
`<!-- readme-test: skip (needs GitHub) -->`. Blocks in `sh` and `python` run; a block in any other
named language (`yaml`, ...) must carry a skip marker; a block with no language is text (output,
a directory tree) and is neither run nor counted.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RUNNABLE = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python", "py": "python"}

_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")
_SKIP = re.compile(r"^skip\s*\((?P<reason>[^)]+)\)$")
_ENV = re.compile(r"^env\s+(?P<name>[a-z][a-z0-9-]*)$")


class ReadmeError(ValueError):
    """The README itself is malformed for the test: a marker that is not understood or not followed
    by a block, or a fence that never closes."""


@dataclass(frozen=True)
class Block:
    line: int
    """1-based line number of the opening fence."""
    language: str
    """The info string's first word, lower-cased ("" when there is none)."""
    text: str
    skip: str | None = None
    """The reason given by a skip marker, or None."""
    env: str | None = None
    """`<!-- readme-test: env mlflow -->`: a python block for another environment than Modelog's
    (the user's training environment with the stock mlflow package), run with that interpreter."""

    @property
    def kind(self) -> str | None:
        """`sh` or `python` when the block is runnable, else None."""
        return RUNNABLE.get(self.language)

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.language or 'text'}"


def _marker(line: str, number: int) -> tuple[str, str] | None:
    """("skip", reason) or ("env", name) for a marker line, None for any other line."""
    m = _MARKER.match(line)
    if m is None:
        if "readme-test" in line:
            raise ReadmeError(f"README line {number}: cannot read the marker {line.strip()!r}")
        return None
    skip = _SKIP.match(m.group("body"))
    if skip is not None:
        return "skip", skip.group("reason").strip()
    env = _ENV.match(m.group("body"))
    if env is not None:
        return "env", env.group("name")
    raise ReadmeError(
        f"README line {number}: unknown marker {line.strip()!r} "
        "(expected <!-- readme-test: skip (reason) --> or <!-- readme-test: env NAME -->)"
    )


def parse(markdown: str) -> list[Block]:
    """Every fenced block of `markdown`, in order, with its line, language and skip reason."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    pending: tuple[int, tuple[str, str]] | None = None  # (marker line, marker) waiting for its block
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        fence = _FENCE.match(line)
        if fence is None:
            marker = _marker(line, number)
            if marker is not None:
                if pending is not None:
                    raise ReadmeError(f"README line {pending[0]}: marker not followed by a code block")
                pending = (number, marker)
            elif line.strip() and pending is not None:
                raise ReadmeError(f"README line {pending[0]}: marker not followed by a code block")
            i += 1
            continue
        opening = fence.group("fence")
        language = (fence.group("info").split() or [""])[0].lower()
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = lines[i].strip()
            if close.startswith(opening[0] * len(opening)) and not close.strip(opening[0]):
                break
            body.append(lines[i])
            i += 1
        else:
            raise ReadmeError(f"README line {number}: the code block never closes")
        kind, value = pending[1] if pending else ("", "")
        blocks.append(
            Block(
                number,
                language,
                "\n".join(body) + "\n",
                value if kind == "skip" else None,
                value if kind == "env" else None,
            )
        )
        pending = None
        i += 1
    if pending is not None:
        raise ReadmeError(f"README line {pending[0]}: marker not followed by a code block")
    return blocks


@dataclass(frozen=True)
class Outcome:
    returncode: int | None
    """None when the block did not finish within its time."""
    stdout: str
    stderr: str
    seconds: float
    failed_line: int | None = None
    """The block's line (1-based) that failed, when known."""


class Shell:
    """One bash session, like the terminal a user pastes the README into: variables, exports, the
    working directory and background jobs carry from block to block. Each block runs under
    `set -euo pipefail`; a python block is saved to a file and run with `python` in that session.

    A failing block ends the session (set -e); the next block starts a new one from the variables
    and directory saved after the last block that succeeded, so one failure does not hide the rest.
    """

    def __init__(
        self, cwd: Path, env: dict[str, str], scratch: Path, interpreters: dict[str, str] | None = None
    ) -> None:
        self.cwd, self.env, self.scratch = cwd, env, scratch
        self.interpreters = interpreters or {}
        scratch.mkdir(parents=True, exist_ok=True)
        self.state = scratch / "state.sh"
        self.state.write_text(f"cd {shlex.quote(str(cwd))}\n")
        self.count = 0
        self.groups: list[int] = []
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.cwd,
            env=self.env,
            text=True,
            start_new_session=True,  # its own process group: background jobs included, stopped at close
        )
        self.groups.append(proc.pid)
        s = shlex.quote(str(self.scratch))
        self._send(
            proc,
            f"__rt_dir={s}; __rt_n=0; __rt_base=\" $(compgen -v | tr '\\n' ' ') \"\n"
            "trap 'echo $? > \"$__rt_dir/$__rt_n.rc\"' EXIT\n"
            "trap 'echo $LINENO > \"$__rt_dir/$__rt_n.line\"' ERR\n"
            f"source {shlex.quote(str(self.state))}\n"
            "set -euo pipefail\n",
        )
        return proc

    @staticmethod
    def _send(proc: subprocess.Popen[str], text: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(text)
        proc.stdin.flush()

    def run(self, block: Block, timeout: float) -> Outcome:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        self.count += 1
        n = self.count
        script = self.scratch / f"{n}.sh"
        if block.kind == "python":
            code = self.scratch / f"block-{n}.py"
            code.write_text(block.text)
            python = self.interpreters[block.env] if block.env else "python"
            script.write_text(f"{shlex.quote(python)} {shlex.quote(str(code))}\n")
        else:
            script.write_text(block.text)
        out, err, rc = (self.scratch / f"{n}.{x}" for x in ("out", "err", "rc"))
        # After the block: save every variable the session made (not bash's own) and the directory.
        save = (
            '{ for __rt_v in $(compgen -v); do case "$__rt_v" in __rt_*) continue;; esac; '
            'case "$__rt_base" in *" $__rt_v "*) continue;; esac; '
            'declare -p "$__rt_v" 2>/dev/null || true; done; '
            'echo "cd $(printf %q "$PWD")"; } > "$__rt_dir/state.next" && '
            'mv "$__rt_dir/state.next" "$__rt_dir/state.sh"'
        )
        self._send(
            self.proc,
            f"__rt_n={n}; exec >{shlex.quote(str(out))} 2>{shlex.quote(str(err))}; "
            f'source {shlex.quote(str(script))} </dev/null; {save}; echo 0 > "$__rt_dir/{n}.rc"\n',
        )
        started = time.monotonic()
        code_: int | None = None
        while time.monotonic() - started < timeout:
            text = rc.read_text().strip() if rc.exists() else ""
            if text:
                code_ = int(text)
                break
            if self.proc.poll() is not None and not rc.exists():
                code_ = self.proc.returncode
                break
            time.sleep(0.05)
        if code_ is None:
            self._kill(self.proc.pid)
            self.proc.wait()
        stderr = err.read_text(errors="replace") if err.exists() else ""
        return Outcome(
            code_,
            out.read_text(errors="replace") if out.exists() else "",
            stderr,
            time.monotonic() - started,
            self._failed_line(block, n, stderr) if code_ else None,
        )

    def _failed_line(self, block: Block, n: int, stderr: str) -> int | None:
        """Bash's ERR trap records the line of a sh block; a Python traceback names its own."""
        if block.kind == "python":
            lines = re.findall(rf'File "[^"]*block-{n}\.py", line (\d+)', stderr)
            return int(lines[-1]) if lines else None
        recorded = self.scratch / f"{n}.line"
        text = recorded.read_text().strip() if recorded.exists() else ""
        return int(text) if text.isdigit() else None

    @staticmethod
    def _kill(group: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)

    def close(self) -> None:
        """End every session and what it left running in the background (a user's Ctrl-C)."""
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        for group in self.groups:
            self._kill(group)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.wait(10)


def tail(text: str, lines: int = 40) -> str:
    cut = text.splitlines()[-lines:]
    return "\n".join(cut) if cut else "(nothing)"


def failure_report(block: Block, outcome: Outcome) -> str:
    status = (
        f"did not finish within {outcome.seconds:.0f}s"
        if outcome.returncode is None
        else f"exited {outcome.returncode} after {outcome.seconds:.1f}s"
    )
    numbered = "\n".join(
        f"{block.line + i:5d}{' >' if i == outcome.failed_line else '  '} {t}"
        for i, t in enumerate(block.text.splitlines(), 1)
    )
    where = f" at line {block.line + outcome.failed_line}" if outcome.failed_line else ""
    return (
        f"README line {block.line}: the {block.language} block {status}{where}\n"
        f"--- block\n{numbered}\n"
        f"--- stdout (tail)\n{tail(outcome.stdout)}\n"
        f"--- stderr (tail)\n{tail(outcome.stderr)}"
    )
