"""Pieces every CLI module shares: error printing, --json output, plain tables."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click
import grpc
from click.exceptions import NoArgsIsHelpError

from modelog.errors import UNREACHABLE_HINT, ModelogError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 130, 141
"""Exit codes of every command: 1 an error, 2 bad usage (click's), 130 Ctrl-C, 141 the reader of our
output went away (as a process killed by SIGPIPE reports it). A command may add its own (3: `data
status` found changes, `events verify` found a broken chain)."""


class CliError(click.ClickException):
    """An error found on this side (a bad pointer file, a missing input), printed like a server's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def show(self, file: Any = None) -> None:
        click.echo(f"modelog: {self.code}: {self.message}", err=True)


def error_line(exc: BaseException) -> str:
    """`<STATUS>: <message>` for any error a command can end with; never a traceback."""
    if isinstance(exc, ModelogError):
        code, detail = exc.code.name, exc.message
    elif isinstance(exc, grpc.RpcError):
        code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
        detail = (exc.details() if isinstance(exc, grpc.Call) else "") or str(exc)
    else:
        return f"INTERNAL: {type(exc).__name__}: {exc}"
    if code == "UNAVAILABLE" and UNREACHABLE_HINT not in detail:  # the SDK's errors carry it already
        detail += f" ({UNREACHABLE_HINT})"
    return f"{code}: {detail}"


def die(line: str, exit_code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"modelog: {line}", err=True)
    sys.exit(exit_code)


def grpc_errors(fn: F) -> F:
    """Print a server error as one readable line and exit 1, instead of a traceback."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (grpc.RpcError, ModelogError) as exc:
            die(error_line(exc))

    return run  # type: ignore[return-value]


def _unquoted(hint: str) -> str:
    return hint.strip("'\"")


def _usage_line(exc: click.UsageError) -> str:
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter):
        hint = exc.param_hint if isinstance(exc.param_hint, str) else None
        if hint is None and exc.param is not None and exc.ctx is not None:
            hint = exc.param.get_error_hint(exc.ctx)
        message = f"{_unquoted(hint)}: {exc.message}" if hint else exc.message
    else:
        message = exc.format_message()
    path = exc.ctx.command_path if exc.ctx is not None else ""
    return f"INVALID_ARGUMENT: {message.rstrip('.')}" + (f" (see `{path} --help`)" if path else "")


def _quiet_broken_pipe() -> NoReturn:
    """Our reader left (`modelog ... | head`): stop without a word, like any Unix filter."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
    except (OSError, ValueError):
        pass
    sys.exit(EXIT_BROKEN_PIPE)


@contextlib.contextmanager
def _deprecations() -> Iterator[None]:
    """A deprecated spelling a person typed (`ds@3`) gets one line on stderr saying what to write
    instead, whatever the command then does; other warnings are shown as Python would."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.filterwarnings("always", category=DeprecationWarning, module=r"modelog\.")
        try:
            yield
        finally:
            for w in seen:
                if issubclass(w.category, DeprecationWarning) and "modelog" in w.filename:
                    click.echo(f"warning: {w.message}", err=True)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


class ModelogGroup(click.Group):
    """The `modelog` command: every way a command can end becomes one line on stderr and an exit code
    (see EXIT_*), whichever command it is: click's usage errors, server errors, Ctrl-C, a closed pipe,
    a bug."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            with _deprecations():
                code = super().main(args, prog_name, complete_var, False, **extra)
        except NoArgsIsHelpError as exc:  # a bare group (`modelog runs`) asks what it can do
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            die(_usage_line(exc), exc.exit_code)
        except CliError as exc:
            die(f"{exc.code}: {exc.message}", exc.exit_code)
        except click.ClickException as exc:
            die(f"UNKNOWN: {exc.format_message()}", exc.exit_code)
        except click.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):
                die("CANCELLED: interrupted", EXIT_INTERRUPTED)
            die("CANCELLED: aborted")
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            die(f"OS_ERROR: {where}{exc.strerror or exc}")
        except Exception as exc:  # noqa: BLE001 - the promise is one line, never a traceback
            die(error_line(exc))
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        # Here, not in main(): click turns a closed pipe into a plain exit 1 before main() sees it.
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
                _quiet_broken_pipe()
            raise


def emit(data: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Aligned columns for people (scripts use --json)."""
    if not rows:
        return "(none)"

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    head = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([head, *body])


def instant(value: str | None, option: str = "--as-of") -> datetime | None:
    """An ISO 8601 instant from the command line (`2026-03-01T00:00:00Z`); UTC when it has no zone."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (2026-03-01T00:00:00Z)", param_hint=option
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


CONNECTION_FIELDS = frozenset({"registry", "client", "_sender"})
"""SDK objects keep their connection in these fields; they never belong in `--json` output."""


def plain(value: Any) -> Any:
    """SDK dataclasses, lists, dicts and datetimes as JSON-ready values (without their connection)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in CONNECTION_FIELDS
        }
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"
