"""Pieces every CLI module shares: error printing, --json output, plain tables."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

import click
import grpc

from modelog.errors import ModelogError

F = TypeVar("F", bound=Callable[..., Any])


def grpc_errors(fn: F) -> F:
    """Print a server error as one readable line and exit 1, instead of a traceback."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (grpc.RpcError, ModelogError) as exc:
            if isinstance(exc, ModelogError):
                code, detail = exc.code.name, exc.message
            else:
                code = exc.code().name if hasattr(exc, "code") else "ERROR"
                detail = exc.details() if hasattr(exc, "details") else str(exc)
            if code == "UNAVAILABLE":
                detail += " (is `modelog up` running? set MODELOG_URL to reach another server)"
            click.echo(f"modelog: {code}: {detail}", err=True)
            sys.exit(1)

    return run  # type: ignore[return-value]


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
