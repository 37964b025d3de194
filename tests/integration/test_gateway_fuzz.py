"""Property-based run of the JSON API against its own OpenAPI document (schemathesis): for every
operation, generated requests with a valid admin token never get a 5xx, and a refused one (4xx)
wrote nothing to any log.

schemathesis generates the bodies from the document the gateway serves (built here from the same
descriptors), so a schema that lies about what the transcoder accepts shows up as failures too.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from urllib3.exceptions import ReadTimeoutError

from modelog_services.gateway import jsonapi, openapi
from tests.integration.gatewayfix import Platform, platform

__all__ = ["platform"]

EXAMPLES = 5
SKIPPED = {
    # Rotates the very token the run uses: every later case would be a 401.
    "modelog.identity.v1.Identity.RotateOwnToken",
    # Would make the platform deliver to whatever URL was generated: never a target from a test.
    "modelog.audit.v1.Webhooks.CreateWebhook",
    "modelog.audit.v1.Webhooks.UpdateWebhook",
    "modelog.audit.v1.Webhooks.TestWebhook",
    "modelog.audit.v1.Webhooks.Redeliver",
}
"""Operations not fuzzed, and why; everything else in the permission table is."""
STREAM_WAIT_S = 3.0

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "positive",
            "max-examples": EXAMPLES,
            "with-security-parameters": False,
        },
    }
)
DOCUMENT = openapi.document(tuple(r.descriptor for r in jsonapi.served().values()), jsonapi.PREFIX)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).exclude(operation_id=sorted(SKIPPED))
KNOWN: dict[str, dict[str, str]] = {}
SEEN: dict[str, Counter[int]] = {}
SPENT: dict[str, float] = {}
"""Statuses per operation, for the coverage test below (and a person reading `-s` output)."""


@schemathesis.serializer(jsonapi.NDJSON)
def _ndjson(ctx: Any, value: Any) -> dict[str, bytes]:
    items = value if isinstance(value, list) else [value]
    return {"data": b"".join(json.dumps(item).encode() + b"\n" for item in items)}


def _streamed(case: Any, p: Platform, headers: dict[str, str]) -> tuple[int, str]:
    """A server stream: the status, and its first event or refusal (a stream that follows a log would
    never end on its own, so we leave after the first event or a short wait)."""
    kwargs = case.as_transport_kwargs(base_url=p.http, headers=headers)
    with requests.request(**kwargs, stream=True, timeout=(10, STREAM_WAIT_S)) as resp:
        if resp.status_code != 200:
            return resp.status_code, resp.text
        first = b""
        try:
            for chunk in resp.iter_content(chunk_size=None):
                first += chunk
                if b"\n\n" in first:
                    break
        except requests.exceptions.ConnectionError as exc:
            if isinstance(exc.args[0] if exc.args else None, ReadTimeoutError):
                return 200, "(open and quiet)"
            return 599, f"stream broke: {exc}"
        text = first.decode(errors="replace")
        if text.startswith("event: error"):
            body = json.loads(text.split("data: ", 1)[1])
            return 200 if body["error"]["code"] not in (2, 13, 15) else 500, text
        return 200, text


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_input_is_a_server_error_and_a_refusal_writes_nothing(case: Any, platform: Platform) -> None:
    name = case.operation.definition.raw["operationId"]
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {platform.token}"}
    before = KNOWN.pop("heads", None) or platform.heads()
    if case.operation.definition.raw["x-grpc-streaming"] in ("server-streaming", "bidirectional streaming"):
        status, text = _streamed(case, platform, headers)
    else:
        resp = case.call(base_url=platform.http, headers=headers, timeout=30)
        status, text = resp.status_code, resp.text
    SEEN.setdefault(name, Counter())[status] += 1
    assert status < 500, f"{name} answered {status}: {text[:2000]}\nbody: {json.dumps(case.body)[:4000]}"
    if 400 <= status < 500:
        after = platform.heads()
        assert after == before, f"{name} refused ({status}) but wrote: {text[:500]}"
        KNOWN["heads"] = after  # nothing else writes here: the next case starts from these
    SPENT[name] = SPENT.get(name, 0.0) + time.monotonic() - started


def test_every_operation_but_the_skipped_ones_was_fuzzed() -> None:
    if not SEEN:
        pytest.skip("the fuzz test did not run in this session")
    expected = {op["post"]["operationId"] for op in DOCUMENT["paths"].values()} - SKIPPED
    assert expected <= set(SEEN), sorted(expected - set(SEEN))
    total: Counter[int] = sum(SEEN.values(), Counter())
    print(
        f"\n{sum(total.values())} cases over {len(SEEN)} operations; statuses {dict(sorted(total.items()))}"
    )
    for op, statuses in sorted(SEEN.items()):
        print(f"  {op}: {dict(sorted(statuses.items()))} in {SPENT.get(op, 0):.2f}s")
