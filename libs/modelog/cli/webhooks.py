"""`modelog webhooks create|update|list|show|deliveries|enable|disable|delete|redeliver|test`."""

from __future__ import annotations

from typing import Any

import click

from modelog.cli.common import die, emit, grpc_errors, table


def _row(w: Any) -> dict[str, Any]:
    parts = [("service", w.services), ("type", w.types), ("stream", w.streams), ("model", w.models)]
    flt = " ".join(f"{kind}={v}" for kind, values in parts for v in values)
    state = "enabled" if w.enabled else f"DISABLED ({w.disabled_reason})"
    return {"id": w.id, "url": w.url, "filter": flt or "(every event)", "state": state}


def _show(w: Any) -> str:
    lines = [
        f"webhook {w.id}",
        f"  url:       {w.url}",
        f"  filter:    {_row(w)['filter']}",
        f"  state:     {_row(w)['state']}",
        f"  secret:    fingerprint {w.secret_fingerprint}",
        f"  created:   {w.created_at} by {w.created_by}",
        f"  cursor:    {w.cursor}",
    ]
    if w.description:
        lines.insert(2, f"  about:     {w.description}")
    return "\n".join(lines)


@click.group()
def webhooks() -> None:
    """Webhooks for CI/CD: matching events POSTed as signed CloudEvents JSON, with a delivery log."""


@webhooks.command("create")
@click.argument("url")
@click.option("--type", "types", multiple=True, help="service.Type or Type (repeatable)")
@click.option("--service", "services", multiple=True, help="a log to include (repeatable)")
@click.option("--stream", "streams", multiple=True, help="a stream id or prefix* (repeatable)")
@click.option("--model", "models", multiple=True, help="a registered model's events (repeatable)")
@click.option("--secret", help="whsec_<base64>; default: a new one, printed once")
@click.option("--description", default="")
@click.option("--from", "from_cursor", default="now", help="'now' (default), 'start' or a cursor")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def create_cmd(
    url: str,
    types: tuple[str, ...],
    services: tuple[str, ...],
    streams: tuple[str, ...],
    models: tuple[str, ...],
    secret: str | None,
    description: str,
    from_cursor: str,
    as_json: bool,
) -> None:
    """Register URL for the events matching every given filter."""
    from modelog import webhooks as sdk

    w = sdk.create(
        url,
        types=types,
        services=services,
        streams=streams,
        models=models,
        secret=secret,
        description=description,
        from_cursor=from_cursor,
    )
    text = _show(w)
    if w.secret and not secret:
        text += f"\n\nsecret (shown once, give it to the receiver): {w.secret}"
    emit(w.as_dict(), as_json, text)


@webhooks.command("update")
@click.argument("webhook_id")
@click.option("--url")
@click.option("--type", "types", multiple=True, help="replaces the types (repeatable)")
@click.option("--service", "services", multiple=True, help="replaces the services (repeatable)")
@click.option("--stream", "streams", multiple=True, help="replaces the streams (repeatable)")
@click.option("--model", "models", multiple=True, help="replaces the models (repeatable)")
@click.option("--description")
@click.option("--new-secret", is_flag=True, help="generate a new secret (printed once)")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def update_cmd(
    webhook_id: str,
    url: str | None,
    types: tuple[str, ...],
    services: tuple[str, ...],
    streams: tuple[str, ...],
    models: tuple[str, ...],
    description: str | None,
    new_secret: bool,
    as_json: bool,
) -> None:
    """Change a webhook's URL, filter, description or secret (what is not given stays)."""
    from modelog import webhooks as sdk

    w = sdk.update(
        webhook_id,
        url=url,
        types=types or None,
        services=services or None,
        streams=streams or None,
        models=models or None,
        description=description,
        new_secret=new_secret,
    )
    text = _show(w) + (f"\n\nnew secret (shown once): {w.secret}" if w.secret else "")
    emit(w.as_dict(), as_json, text)


@webhooks.command("list")
@click.option("--all", "include_deleted", is_flag=True, help="include deleted webhooks")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def list_cmd(include_deleted: bool, as_json: bool) -> None:
    """Every webhook with its filter and state."""
    from modelog import webhooks as sdk

    hooks = sdk.list(include_deleted)
    emit(
        [w.as_dict() for w in hooks],
        as_json,
        table([_row(w) for w in hooks], ["id", "url", "state", "filter"]),
    )


@webhooks.command("show")
@click.argument("webhook_id")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def show_cmd(webhook_id: str, as_json: bool) -> None:
    """One webhook (never its secret: only the fingerprint)."""
    from modelog import webhooks as sdk

    w = sdk.get(webhook_id)
    emit(w.as_dict(), as_json, _show(w))


def _deliveries_table(ds: list[Any]) -> str:
    rows = [
        {
            "id": d.id,
            "event": f"{d.service}#{d.position} {d.event_type}",
            "kind": d.kind,
            "status": d.status,
            "attempts": d.attempts,
            "code": d.response_code or "-",
            "ms": round(d.latency_ms, 1),
            "error": d.last_error[:60],
        }
        for d in ds
    ]
    return table(rows, ["id", "event", "kind", "status", "attempts", "code", "ms", "error"])


@webhooks.command("deliveries")
@click.argument("webhook_id", required=False, default="")
@click.option("--status", default="", help="pending, retrying, delivered or failed")
@click.option("--limit", default=50, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def deliveries_cmd(webhook_id: str, status: str, limit: int, as_json: bool) -> None:
    """The delivery log, newest first (every webhook unless one is named)."""
    from modelog import webhooks as sdk

    ds = sdk.deliveries(webhook_id, status=status, limit=limit)
    emit([d.as_dict() for d in ds], as_json, _deliveries_table(ds))


@webhooks.command("enable")
@click.argument("webhook_id")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def enable_cmd(webhook_id: str, as_json: bool) -> None:
    """Re-enable; delivery resumes where it stopped."""
    from modelog import webhooks as sdk

    w = sdk.enable(webhook_id)
    emit(w.as_dict(), as_json, f"enabled {w.id}; delivery resumes from its cursor")


@webhooks.command("disable")
@click.argument("webhook_id")
@click.option("--reason", default="")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def disable_cmd(webhook_id: str, reason: str, as_json: bool) -> None:
    """Stop deliveries until `modelog webhooks enable` (nothing is skipped meanwhile)."""
    from modelog import webhooks as sdk

    w = sdk.disable(webhook_id, reason)
    emit(w.as_dict(), as_json, f"disabled {w.id}: {w.disabled_reason}")


@webhooks.command("delete")
@click.argument("webhook_id")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def delete_cmd(webhook_id: str, as_json: bool) -> None:
    """Stop for good and erase the secret (the delivery log stays)."""
    from modelog import webhooks as sdk

    sdk.delete(webhook_id)
    emit({"id": webhook_id, "deleted": True}, as_json, f"deleted {webhook_id}")


@webhooks.command("redeliver")
@click.argument("webhook_id")
@click.option("--delivery", "delivery_id", type=int, default=0, help="a delivery id from `deliveries`")
@click.option("--from", "from_cursor", default="", help="'start' or a cursor: send the range after it")
@click.option("--to", "to_cursor", default="", help="last cursor of the range (default: now)")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def redeliver_cmd(webhook_id: str, delivery_id: int, from_cursor: str, to_cursor: str, as_json: bool) -> None:
    """Send one delivery again, or a range of events (same webhook-id as the first time). Exit status
    1 unless the receiver accepted every one (the first refusal is named on stderr)."""
    from modelog import webhooks as sdk

    if not delivery_id and not from_cursor:
        raise click.UsageError("give --delivery ID or --from CURSOR")
    ds = sdk.redeliver(webhook_id, delivery_id=delivery_id, from_cursor=from_cursor, to_cursor=to_cursor)
    failed = [d for d in ds if d.status != "delivered"]
    emit(
        [d.as_dict() for d in ds],
        as_json,
        f"{len(ds) - len(failed)} of {len(ds)} delivered\n{_deliveries_table(ds)}",
    )
    if failed:
        d = failed[0]
        why = d.last_error or (f"HTTP {d.response_code}" if d.response_code else d.status)
        die(
            f"UNAVAILABLE: {len(failed)} of {len(ds)} not delivered; the first, delivery {d.id} "
            f"({d.service}#{d.position} {d.event_type}): {why}"
        )


@webhooks.command("test")
@click.argument("webhook_id")
@click.option("--json", "as_json", is_flag=True)
@grpc_errors
def test_cmd(webhook_id: str, as_json: bool) -> None:
    """Send a ping (dev.modelog.audit.WebhookPing) and show what the receiver answered."""
    from modelog import webhooks as sdk

    d = sdk.test(webhook_id)
    text = f"{d.status}: HTTP {d.response_code or '-'} in {d.latency_ms:.1f} ms" + (
        f" ({d.last_error})" if d.last_error else ""
    )
    emit(d.as_dict(), as_json, text)
