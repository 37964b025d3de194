"""`modelog audit export|verify|public-key` and `modelog events replay`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelog.cli.common import die, emit, grpc_errors, instant, table

if TYPE_CHECKING:
    from eventlog.records import RecordedEvent


@click.group()
def audit() -> None:
    """Signed compliance export, offline verification, the platform's public key."""


@audit.command("export")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from", "from_time", help="first recorded-at time to include (ISO 8601, UTC if no zone)")
@click.option("--to", "to_time", help="recorded-at time to stop before (ISO 8601)")
@click.option("--model", help="disclose only this registered model's events (others stay as hashes)")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def export_cmd(
    out: Path, from_time: str | None, to_time: str | None, model: str | None, as_json: bool
) -> None:
    """Write a signed, self-contained bundle of every log's events in range."""
    from modelog import audit as sdk

    start, end = instant(from_time, "--from"), instant(to_time, "--to")
    path = sdk.export(out, from_time=start, to_time=end, model=model)
    size = path.stat().st_size
    emit(
        {"path": str(path), "bytes": size, "from": from_time, "to": to_time, "model": model},
        as_json,
        f"wrote {path} ({size:,} bytes); check it with `modelog audit verify {path}`",
    )


@audit.command("public-key")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def public_key_cmd(as_json: bool) -> None:
    """Print the platform's Ed25519 public key (PEM) that signs bundles."""
    from modelog import audit as sdk

    resp = sdk.public_key()
    emit({"key_id": resp.key_id, "hex": resp.public_key.hex(), "pem": resp.pem}, as_json, resp.pem.rstrip())


def render(out: Any) -> str:
    """The human-readable summary of a verified bundle."""
    s = out.summary
    lines = [
        f"bundle created {out.created_at}; scope {out.scope}",
        f"signed by key {out.key_id}"
        + (
            ""
            if out.key_pinned
            else " (the key inside the bundle; pass --public-key to pin the platform's key)"
        ),
        "",
        table(
            [
                {"log": n, **{k: v for k, v in m.items() if k in ("first", "last", "count", "disclosed")}}
                for n, m in out.manifest.items()
            ],
            ["log", "first", "last", "count", "disclosed"],
        ),
        "",
        "actors:",
        table([{"actor": a, "events": c} for a, c in s["actors"].items()], ["actor", "events"]),
        "",
        "events by type:",
        table([{"type": t, "events": c} for t, c in s["types"].items()], ["type", "events"]),
        "",
        "approvals and stage changes:",
        table(s["approvals"], ["at", "type", "actor", "stream_id", "version", "to_stage", "position"]),
        "",
        "Production changes:",
        table(s["production_changes"], ["at", "actor", "stream_id", "version", "from_stage", "to_stage"]),
    ]
    return "\n".join(lines)


@audit.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", "key", help="the expected signer: PEM file, PEM text or 64 hex digits")
@click.option("--json", "as_json", is_flag=True)
def verify_cmd(file: Path, key: str | None, as_json: bool) -> None:
    """Check a bundle OFFLINE: signature and every hash chain; print the summary or the first break."""
    from modelog import audit as sdk

    try:
        out = sdk.verify(file, key)
    except ValueError as exc:
        click.echo(f"modelog: cannot read the public key: {exc}", err=True)
        sys.exit(2)
    if not out.ok:
        where = out.where()
        emit(
            {"ok": False, "log": out.log, "position": out.position, "line": out.line, "reason": out.reason},
            as_json,
            f"BROKEN at {where}: {out.reason}",
        )
        sys.exit(1)
    data = {
        "ok": True,
        "events": out.events,
        "key_id": out.key_id,
        "key_pinned": out.key_pinned,
        "manifest": out.manifest,
        "summary": out.summary,
    }
    emit(data, as_json, f"OK: {out.events:,} events, every chain and the signature verify\n\n{render(out)}")


@click.command("replay")
@click.option(
    "--from", "from_cursor", required=True, help="a cursor (from subscribe/replay --json) or 'start'"
)
@click.option("--to", "to_cursor", help="last cursor to include (default: each log's head now)")
@click.option("--type", "types", multiple=True, help="service.Type or Type (repeatable)")
@click.option("--service", "services", multiple=True, help="a log to include (repeatable)")
@click.option("--stream", "streams", multiple=True, help="a stream id or prefix* (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line, each with its cursor")
@click.option("--to-topic", help="re-deliver to this Kafka topic (CloudEvents, key = stream id) instead")
@click.option(
    "--bootstrap",
    help="Kafka bootstrap servers for --to-topic (default MODELOG_KAFKA_BOOTSTRAP, else the broker of "
    "the `modelog up` running on MODELOG_HOME)",
)
@click.option("--to-webhook", help="re-deliver to this URL instead (signed CloudEvents JSON)")
@click.option("--secret", help="whsec_<base64> to sign --to-webhook deliveries with")
@grpc_errors
def replay(
    from_cursor: str,
    to_cursor: str | None,
    types: tuple[str, ...],
    services: tuple[str, ...],
    streams: tuple[str, ...],
    as_json: bool,
    to_topic: str | None,
    bootstrap: str | None,
    to_webhook: str | None,
    secret: str | None,
) -> None:
    """Print a range of events of every log, merged in time order, or re-deliver it to a Kafka topic
    or a webhook."""
    import json

    from modelog import audit as sdk

    if to_webhook and not secret:
        raise click.UsageError("--to-webhook needs --secret (the receiver's whsec_... secret)")
    try:
        events = sdk.replay(from_cursor, to_cursor, types=types, services=services, streams=streams)
        if to_topic:
            _to_topic(events, to_topic, bootstrap)
            return
        if to_webhook and secret:
            _to_webhook(events, to_webhook, secret)
            return
        last = None
        for e in events:
            last = e.cursor
            if as_json:
                click.echo(json.dumps(e.as_dict(), separators=(",", ":"), default=str))
            else:
                click.echo(
                    f"{e.recorded_at.isoformat()[:23]} {e.service:<10} #{e.position:<8} {e.type:<24} "
                    f"{e.stream_id}  actor={e.metadata.get('actor', '-')}"
                )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if last and not as_json:
        click.echo(f"next cursor: {last}", err=True)


def _to_topic(events: Iterator[Any], topic: str, bootstrap: str | None) -> None:
    import asyncio
    import logging

    from aiokafka.errors import KafkaError

    from modelog.shared.settings import Settings
    from modelog_services.audit.redeliver import publish

    settings = Settings()
    target = bootstrap or settings.client_bootstrap()
    if not target:
        raise click.UsageError(
            "--to-topic needs --bootstrap or MODELOG_KAFKA_BOOTSTRAP (or a `modelog up` running on "
            f"MODELOG_HOME={settings.home}, which records its broker in {settings.bootstrap_path.name})"
        )
    source = (
        "--bootstrap"
        if bootstrap
        else "MODELOG_KAFKA_BOOTSTRAP"
        if settings.kafka_bootstrap
        else f"{settings.bootstrap_path}, written by `modelog up`: is it still running?"
    )
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one line below says it all
    last: list[str] = []
    try:
        sent = asyncio.run(publish(_records(events, last), target, topic))
    except KafkaError as exc:
        die(f"UNAVAILABLE: cannot publish to Kafka at {target} ({source}): {exc}")
    click.echo(f"re-delivered {sent:,} events to {topic}" + (f"; next cursor: {last[-1]}" if last else ""))


def _records(events: Iterator[Any], last: list[str]) -> Iterator[RecordedEvent]:
    """The events as stored; `last` holds the cursors after the latest two handed out (for the
    re-delivery commands, which run the server's own relay and webhook sender in this process)."""
    from eventlog.records import RecordedEvent

    for e in events:
        last[:] = [*last[-1:], e.cursor]
        r = e.raw
        yield RecordedEvent(
            r.service,
            r.position,
            r.stream_id,
            r.stream_version,
            r.event_id,
            r.type,
            r.schema_version,
            r.payload_json,
            r.metadata_json,
            e.recorded_at,
            r.prev_hash,
            r.hash,
        )


def _to_webhook(events: Iterator[Any], url: str, secret: str) -> None:
    """POSTs from this machine (no address guard: it is the user's own network), in order, stopping
    at the first event the receiver refuses so that the printed cursor resumes exactly there."""
    import asyncio

    from modelog.errors import ModelogError
    from modelog_services.audit.redeliver import post_signed

    last: list[str] = []
    try:
        sent, failure = asyncio.run(post_signed(_records(events, last), url, secret))
    except ModelogError as exc:
        raise click.BadParameter(exc.message) from None
    if failure:
        resume = f"; resume with --from {last[-2]}" if len(last) > 1 else ""
        click.echo(f"re-delivered {sent:,} events to {url}, then {failure}{resume}", err=True)
        sys.exit(1)
    click.echo(f"re-delivered {sent:,} events to {url}" + (f"; next cursor: {last[-1]}" if last else ""))


if __name__ == "__main__":  # the group alone: `python -m modelog.cli.audit verify FILE`
    audit()
