"""The `modelog` command line."""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import click

from modelog._client import Connection
from modelog.cli.common import ModelogGroup, emit, grpc_errors


@click.group(cls=ModelogGroup, name="modelog")
@click.version_option(package_name="modelog")
def main() -> None:
    """Modelog: experiment tracking, model registry and a verifiable audit log."""


_TLS_HELP = (
    "serve gRPC over TLS: MODELOG_TLS_CERT/KEY, else a local CA and certificate in MODELOG_HOME/tls "
    "(clients set MODELOG_CA_FILE to the ca.pem the ready line names)"
)


@main.command()
@click.option("--tls", is_flag=True, help=_TLS_HELP)
@click.option(
    "--workers",
    type=click.IntRange(1, 16),
    default=None,
    help="processes serving every service on the same ports (default MODELOG_WORKERS, else 1); "
    "more use more cores",
)
def up(tls: bool, workers: int | None) -> None:
    """Run the whole platform locally (embedded PostgreSQL and broker unless MODELOG_PG_DSN /
    MODELOG_KAFKA_BOOTSTRAP name external ones). Ctrl-C stops everything."""
    from modelog.shared.settings import Settings
    from modelog_platform.runner import up as run_up

    settings = Settings()
    settings.tls = settings.tls or tls
    if workers is not None:
        settings.workers = workers
    sys.exit(run_up(settings))


@main.command()
@click.argument("service")
@click.option("--addr", help="host:port to listen on (default MODELOG_ADDR)")
@click.option("--tls", is_flag=True, help=_TLS_HELP)
def serve(service: str, addr: str | None, tls: bool) -> None:
    """Run one service in this process, against MODELOG_PG_DSN and MODELOG_KAFKA_BOOTSTRAP.
    Run several copies to scale out: they share work as a Kafka consumer group."""
    from modelog.shared.settings import Settings
    from modelog_platform.runner import serve_one

    settings = Settings(addr=addr) if addr else Settings()
    settings.tls = settings.tls or tls
    sys.exit(serve_one(service, settings))


@main.group()
def token() -> None:
    """Bearer tokens."""


_EXPIRES_HELP = "expire after a duration (30d, 12h, 15m, 90s) or at an ISO 8601 instant"


def _expiry(value: str | None) -> Any:
    """--expires as a protobuf Timestamp (None when not given)."""
    import re
    from datetime import datetime, timedelta

    from google.protobuf.timestamp_pb2 import Timestamp

    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", value)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m[2]]
        when = datetime.now(UTC) + timedelta(**{unit: int(m[1])})
    else:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is neither a duration (30d, 12h, 15m, 90s) nor an ISO 8601 instant",
                param_hint="--expires",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _iso(msg: Any, field: str) -> str | None:
    return getattr(msg, field).ToDatetime(tzinfo=UTC).isoformat() if msg.HasField(field) else None


@token.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, help="admin, member (default) or viewer; repeatable")
@click.option("--expires", help=_EXPIRES_HELP)
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def token_create(name: str, roles: tuple[str, ...], expires: str | None, as_json: bool) -> None:
    """Create a token; its secret is printed once."""
    from modelog._gen.identity.v1 import identity_pb2

    request = identity_pb2.CreateTokenRequest(name=name, roles=list(roles), expires_at=_expiry(expires))
    with Connection() as conn:
        resp = conn.identity.CreateToken(request)
    expires_at = _iso(resp.token, "expires_at")
    emit(
        {
            "name": resp.token.name,
            "roles": list(resp.token.roles),
            "expires_at": expires_at,
            "secret": resp.secret,
        },
        as_json,
        f"{resp.secret}\n(token {resp.token.name!r}, roles {','.join(resp.token.roles)}"
        f"{f', expires {expires_at}' if expires_at else ''}: shown once, store it now)",
    )


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def token_list(as_json: bool) -> None:
    """List tokens (never their secrets)."""
    from modelog._gen.identity.v1 import identity_pb2

    with Connection() as conn:
        resp = conn.identity.ListTokens(identity_pb2.ListTokensRequest())
    rows = [
        {
            "name": t.name,
            "roles": list(t.roles),
            "created_by": t.created_by,
            "created_at": t.created_at.ToDatetime(tzinfo=UTC).isoformat(),
            "expires_at": _iso(t, "expires_at"),
            "last_used_at": _iso(t, "last_used_at"),
            "revoked": t.revoked,
        }
        for t in resp.tokens
    ]
    emit(
        rows,
        as_json,
        "\n".join(
            f"{r['name']:<24} {','.join(r['roles']):<14} by {r['created_by']:<12} {r['created_at']}"
            f"  expires {r['expires_at'] or 'never'}  last used {r['last_used_at'] or 'never'}"
            f"{'  REVOKED' if r['revoked'] else ''}"
            for r in rows
        ),
    )


@token.command("rotate")
@click.argument("name", required=False)
@click.option("--expires", help=_EXPIRES_HELP + " (default: keep the current expiry)")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def token_rotate(name: str | None, expires: str | None, as_json: bool) -> None:
    """Give a token a new secret, printed once; the old one stops working. Without NAME, the token
    you are calling with (MODELOG_TOKEN) is rotated; naming another token needs the admin role."""
    from modelog._gen.identity.v1 import identity_pb2

    with Connection() as conn:
        if name is None:
            own = conn.identity.WhoAmI(identity_pb2.WhoAmIRequest()).actor
            resp = conn.identity.RotateOwnToken(
                identity_pb2.RotateOwnTokenRequest(name=own, expires_at=_expiry(expires))
            )
        else:
            resp = conn.identity.RotateToken(
                identity_pb2.RotateTokenRequest(name=name, expires_at=_expiry(expires))
            )
    expires_at = _iso(resp.token, "expires_at")
    emit(
        {
            "name": resp.token.name,
            "roles": list(resp.token.roles),
            "expires_at": expires_at,
            "secret": resp.secret,
        },
        as_json,
        f"{resp.secret}\n(token {resp.token.name!r} rotated; the old secret no longer works"
        f"{f'; expires {expires_at}' if expires_at else ''}: shown once, store it now)",
    )


@token.command("revoke")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def token_revoke(name: str, as_json: bool) -> None:
    """Revoke a token; it stops working within seconds."""
    from modelog._gen.identity.v1 import identity_pb2

    with Connection() as conn:
        conn.identity.RevokeToken(identity_pb2.RevokeTokenRequest(name=name))
    emit({"name": name, "revoked": True}, as_json, f"revoked {name}")


@main.group()
def events() -> None:
    """Inspect the services' event logs."""


@events.command("heads")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def log_heads(as_json: bool) -> None:
    """Every log's last position and hash."""
    from modelog._gen.eventlog.v1 import eventlog_pb2

    with Connection() as conn:
        resp = conn.eventlog.ListLogs(eventlog_pb2.ListLogsRequest())
    rows = [{"service": h.service, "position": h.position, "hash": h.hash.hex()} for h in resp.logs]
    emit(rows, as_json, "\n".join(f"{r['service']:<12} {r['position']:>10}  {r['hash'][:16]}" for r in rows))


@events.command("verify")
@click.argument("service", required=False)
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def log_verify(service: str | None, as_json: bool) -> None:
    """Recompute the hash chain of one log (or all) and name the first bad position."""
    from modelog._gen.eventlog.v1 import eventlog_pb2

    with Connection() as conn:
        names = (
            [service]
            if service
            else [h.service for h in conn.eventlog.ListLogs(eventlog_pb2.ListLogsRequest()).logs]
        )
        reports = [conn.eventlog.Verify(eventlog_pb2.VerifyRequest(service=n)) for n in names]
    rows = [
        {
            "service": r.service,
            "ok": r.ok,
            "events_checked": r.events_checked,
            "first_bad_position": r.first_bad_position,
            "reason": r.reason,
        }
        for r in reports
    ]
    emit(
        rows,
        as_json,
        "\n".join(
            f"{r['service']:<12} {'OK' if r['ok'] else 'BROKEN'} {r['events_checked']} events"
            + ("" if r["ok"] else f"; first bad position {r['first_bad_position']}: {r['reason']}")
            for r in rows
        ),
    )
    if not all(r.ok for r in reports):
        sys.exit(3)


def _event_row(e: Any) -> dict[str, Any]:
    meta = json.loads(e.metadata_json)
    return {
        "service": e.service,
        "position": e.position,
        "recorded_at": e.recorded_at.ToDatetime(tzinfo=UTC).isoformat(),
        "stream_id": e.stream_id,
        "stream_version": e.stream_version,
        "type": e.type,
        "schema_version": e.schema_version,
        "actor": meta.get("actor"),
        "event_id": e.event_id,
        "payload": json.loads(e.payload_json),
        "metadata": meta,
        "hash": e.hash.hex(),
    }


@events.command("tail")
@click.option("--service", "services", multiple=True, help="a log to follow (repeatable); default: every log")
@click.option(
    "--from",
    "from_position",
    type=click.IntRange(min=1),
    default=None,
    help="first position to show (default: only new events)",
)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@grpc_errors
def events_tail(services: tuple[str, ...], from_position: int | None, as_json: bool) -> None:
    """Follow logs live, as events commit. Ctrl-C stops (exit 0); so does closing its output
    (`modelog events tail | head`, exit 141)."""
    from modelog._gen.eventlog.v1 import eventlog_pb2

    with Connection() as conn:
        names = list(services) or [
            h.service for h in conn.eventlog.ListLogs(eventlog_pb2.ListLogsRequest()).logs
        ]
        with Followers(conn, names, from_position or 0) as followers:
            try:
                for item in followers:
                    row = _event_row(item)
                    if as_json:
                        click.echo(json.dumps(row, default=str))
                    else:
                        click.echo(
                            f"{row['service']:<11} #{row['position']:<8} {row['recorded_at'][:23]} "
                            f"{row['type']:<24} {row['stream_id']:<40} by {row['actor']}"
                        )
            except KeyboardInterrupt:
                pass


class Followers:
    """One thread per log, each following its Tail stream into one queue. Leaving the block (the
    reader went away, Ctrl-C, an error) stops them without a word: a thread whose stream ends
    because we are stopping has nothing to report."""

    def __init__(self, conn: Connection, names: list[str], from_position: int) -> None:
        self.conn, self.names, self.from_position = conn, names, from_position
        self.out: queue.Queue[Any] = queue.Queue()
        self.stopping = threading.Event()
        self.calls: list[Any] = []

    def __enter__(self) -> Followers:
        for name in self.names:
            threading.Thread(target=self._follow, args=(name,), daemon=True, name=f"tail-{name}").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for call in list(self.calls):
            call.cancel()

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self.out.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def _follow(self, name: str) -> None:
        from modelog._gen.eventlog.v1 import eventlog_pb2

        try:
            call = self.conn.eventlog.Tail(
                eventlog_pb2.TailRequest(service=name, from_position=self.from_position)
            )
            self.calls.append(call)
            if self.stopping.is_set():
                call.cancel()
            for e in call:
                self.out.put(e)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread, or not at all
            if not self.stopping.is_set():
                self.out.put(exc)


@main.group()
def admin() -> None:
    """Operate the platform: projections and their lag."""


@admin.command("projections")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def admin_projections(as_json: bool) -> None:
    """Every projection with its checkpoint and lag per source log."""
    from modelog._gen.admin.v1 import admin_pb2

    with Connection() as conn:
        resp = conn.admin.ListProjections(admin_pb2.ListProjectionsRequest())
    rows = [
        {
            "name": p.name,
            "schema": p.schema,
            "mode": p.mode,
            "lag": sum(s.lag for s in p.sources),
            "sources": [
                {"source": s.source, "checkpoint": s.checkpoint, "head": s.head, "lag": s.lag}
                for s in p.sources
            ],
            "applied": p.applied,
            "duplicates": p.duplicates,
            "healed_gaps": p.healed_gaps,
            "consumer_errors": p.consumer_errors,
        }
        for p in resp.projections
    ]
    lines = [f"{'projection':<20} {'mode':<7} {'lag':>6}  checkpoints"]
    for r in rows:
        cps = " ".join(f"{s['source']}={s['checkpoint']}/{s['head']}" for s in r["sources"])
        lines.append(f"{r['name']:<20} {r['mode']:<7} {r['lag']:>6}  {cps}")
    emit(rows, as_json, "\n".join(lines))


@admin.command("rebuild")
@click.argument("projection")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def admin_rebuild(projection: str, as_json: bool) -> None:
    """Replay a projection from position 0 into a shadow table, then swap it in atomically."""
    from modelog._gen.admin.v1 import admin_pb2

    with Connection() as conn:
        if not as_json:
            click.echo(f"rebuilding {projection} from position 0 (the live view keeps serving)...", err=True)
        resp = conn.admin.RebuildProjection(admin_pb2.RebuildProjectionRequest(name=projection), timeout=3600)
    emit(
        {"name": resp.name, "events": resp.events, "seconds": round(resp.seconds, 3)},
        as_json,
        f"rebuilt {resp.name}: {resp.events:,} events in {resp.seconds:.2f} s, swapped in",
    )


def _register() -> None:
    from modelog.cli.audit import audit, replay
    from modelog.cli.data import data, gc_command, verify_store_command
    from modelog.cli.imports import import_group
    from modelog.cli.lineage import lineage_command, timeline_command
    from modelog.cli.models import models
    from modelog.cli.monitor import monitor
    from modelog.cli.tracking import experiments, metrics, runs, sync

    for group in (experiments, runs, metrics, sync, data, models, monitor, audit, lineage_command):
        main.add_command(group)
    main.add_command(timeline_command)
    main.add_command(import_group)
    events.add_command(replay)
    admin.add_command(gc_command)
    admin.add_command(verify_store_command)
    from modelog.cli.access import grants, groups, projects
    from modelog.cli.webhooks import webhooks

    main.add_command(webhooks)
    for group in (projects, grants, groups):
        main.add_command(group)


_register()
