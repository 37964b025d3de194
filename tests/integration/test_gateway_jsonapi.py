"""The JSON form of every RPC over HTTP: transcoded from the descriptors, refused in google.rpc's
form, streamed as Server-Sent Events, and written to the logs exactly like an SDK call."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import urllib.error
import urllib.request
import uuid
import zlib
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import urlsplit

import grpc
from openapi_spec_validator import validate
from starlette.applications import Starlette

from modelog_services import permissions
from modelog_services.gateway import jsonapi
from modelog_services.gateway.upstream import Upstream
from tests.integration.gatewayfix import Platform, platform
from tests.waiting import wait_until

__all__ = ["platform"]

API = "/api/modelog/v1"


def call(
    p: Platform,
    method: str,
    body: Any = None,
    *,
    token: str | None = "",
    raw: bytes | None = None,
    http: str = "POST",
    **headers: str,
) -> tuple[int, Any, dict[str, str]]:
    """One request; the answer parsed as JSON when it is JSON, else as text."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = {"Content-Type": "application/json", **{k.replace("_", "-"): v for k, v in headers.items()}}
    if token is not None:
        sent["Authorization"] = f"Bearer {token or p.token}"
    req = urllib.request.Request(f"{p.http}{API}/{method}", data=data, method=http, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text, got = resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, text, got = exc.code, exc.read().decode(), dict(exc.headers)
    try:
        return status, json.loads(text), got
    except ValueError:
        return status, text, got


def ok(p: Platform, method: str, body: Any = None, **headers: str) -> Any:
    status, answer, _ = call(p, method, body if body is not None else {}, **headers)
    assert status == 200, (method, status, answer)
    return answer


def events(text: str) -> list[tuple[str, Any]]:
    """Server-Sent Events as (event name, parsed data); comments skipped."""
    out = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        name = next((line[7:] for line in lines if line.startswith("event: ")), "message")
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        out.append((name, json.loads(data)))
    return out


def violations(answer: dict[str, Any]) -> dict[str, str]:
    for detail in answer["error"]["details"]:
        if detail["@type"].endswith("google.rpc.BadRequest"):
            return {v["field"]: v["description"] for v in detail["fieldViolations"]}
    return {}


def read_log(p: Platform, service: str, after: int) -> list[dict[str, Any]]:
    status, text, headers = call(
        p, "modelog.eventlog.v1.EventLog/ReadLog", {"service": service, "fromPosition": str(after + 1)}
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream"), (status, text)
    got = events(text)
    assert got[-1] == ("end", {"status": "OK"}), got[-1:]
    return [e for name, batch in got if name == "message" for e in batch["events"]]


def test_a_create_and_get_round_trip_is_an_ordinary_audited_call(platform: Platform) -> None:
    before = platform.heads()["tracking"]
    request_id = uuid.uuid4().hex
    created = ok(
        platform,
        "modelog.tracking.v1.Tracking/CreateExperiment",
        {"name": "json-round-trip", "tags": {"team": "ml"}},
        X_Request_Id=request_id,
    )["experiment"]
    assert created["name"] == "json-round-trip" and created["tags"] == {"team": "ml"}
    assert isinstance(created["createdAtMs"], str)  # int64 as a string, per the proto3 JSON mapping
    got = ok(
        platform, "modelog.tracking.v1.Tracking/GetExperiment", {"experiment_id": created["experimentId"]}
    )
    assert got["experiment"] == created  # original field names are accepted like lowerCamel ones

    written = read_log(platform, "tracking", before)
    mine = [e for e in written if e["type"] == "ExperimentCreated"]
    assert len(mine) == 1, [e["type"] for e in written]
    meta = json.loads(mine[0]["metadataJson"])
    assert meta["actor"] == "admin" and meta["request_id"] == request_id
    assert json.loads(mine[0]["payloadJson"])["experiment_id"] == created["experimentId"]

    run = ok(platform, "modelog.tracking.v1.Tracking/StartRun", {"experimentId": created["experimentId"]})
    run_id = run["run"]["info"]["runId"]

    def started_by_admin() -> bool:  # the audit timeline is an async view, fed over the bus
        status, timeline, _ = call(platform, "modelog.audit.v1.Lineage/Timeline", {"entity": f"run:{run_id}"})
        entries = timeline.get("entries", []) if status == 200 else []
        return any(e["type"] == "RunStarted" and e["actor"] == "admin" for e in entries)

    wait_until(started_by_admin, 30, "the timeline to show the run started by admin", every=0.2)


def test_refusals_are_google_rpc_errors_with_their_http_status_and_write_nothing(platform: Platform) -> None:
    viewer = platform.new_token("json-viewer", "viewer")
    before = platform.heads()
    create = "modelog.tracking.v1.Tracking/CreateExperiment"

    status, answer, _ = call(platform, create, {"name": "by-a-viewer"}, token=viewer)
    assert status == 403 and answer["error"]["status"] == "PERMISSION_DENIED", answer

    status, answer, headers = call(platform, create, {"name": "anonymous"}, token=None)
    assert status == 401 and answer["error"]["status"] == "UNAUTHENTICATED"
    assert "Bearer" in headers["www-authenticate"]

    status, answer, _ = call(platform, "modelog.tracking.v1.Tracking/GetExperiment", {"name": "no-such"})
    assert (
        status == 404 and answer["error"]["status"] == "NOT_FOUND" and "no-such" in answer["error"]["message"]
    )

    status, answer, _ = call(platform, create, {"name": 42})
    assert status == 400 and "name" in violations(answer), answer
    status, answer, _ = call(platform, "modelog.tracking.v1.Tracking/StartRun", {"startTimeMs": "soon"})
    assert status == 400 and "startTimeMs" in violations(answer), answer
    status, answer, _ = call(platform, create, {"name": "x", "nmae": "typo"})
    assert status == 400 and "nmae" in violations(answer), answer
    status, answer, _ = call(platform, create, raw=b'{"name": ')
    assert status == 400 and "not valid JSON" in answer["error"]["message"]

    status, answer, _ = call(platform, "modelog.tracking.v1.Tracking/Nope", {})
    assert status == 404 and "Nope" in answer["error"]["message"]
    status, answer, _ = call(platform, "modelog.nothing.v1.Nothing/Get", {})
    assert status == 404 and "modelog.nothing.v1.Nothing" in answer["error"]["message"]
    status, answer, headers = call(platform, create, http="GET")
    assert status == 405 and headers["allow"] == "POST" and answer["error"]["status"] == "UNIMPLEMENTED"

    assert platform.heads() == before


def test_no_hostile_body_is_a_server_error(platform: Platform) -> None:
    get = "modelog.tracking.v1.Tracking/GetRun"
    hostile: dict[str, bytes] = {
        "deep arrays": b"[" * 100_000,
        "deep objects": b'{"runId":' * 50_000,
        "deep inside a message": b'{"runId": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        "huge integer": b'{"runId": ' + b"9" * 10_000 + b"}",
        "out-of-range int64": json.dumps({"startTimeMs": str(10**30)}).encode(),
        "invalid UTF-8": b'{"runId": "\xff\xfe"}',
        "lone surrogate": b'{"runId": "\\ud800"}',
        "a string body": b'"run"',
        "an array body": b"[]",
        "null": b"null",
        "NaN literal": b"NaN",
        "duplicate keys": b'{"runId": "a", "runId": "b"}',
        "NUL in a string": b'{"runId": "a\\u0000b"}',
        "NUL in a map key": b'{"experimentId": "0", "tags": {"a\\u0000": "b"}}',
    }
    for what, raw in hostile.items():
        method = "modelog.tracking.v1.Tracking/StartRun" if b"tags" in raw or b"startTime" in raw else get
        status, answer, _ = call(platform, method, raw=raw)
        assert status == 400, (what, status, answer)
        assert answer["error"]["status"] == "INVALID_ARGUMENT", (what, answer)
    status, answer, _ = call(platform, get, {}, Idempotency_Key="with space")
    assert status == 400 and "idempotency-key" in violations(answer)
    status, answer, _ = call(platform, get, {}, token="t\u00e9")
    assert status == 401, answer


def test_a_server_stream_answers_as_server_sent_events_and_ends(platform: Platform) -> None:
    ok(platform, "modelog.tracking.v1.Tracking/CreateExperiment", {"name": "json-sse"})
    logged = read_log(platform, "tracking", 0)
    assert [int(e["position"]) for e in logged] == list(range(1, len(logged) + 1))
    assert all(isinstance(e["hash"], str) and base64.b64decode(e["hash"]) for e in logged)  # bytes: base64

    # A refusal before the first message is an ordinary error response, not a stream.
    viewer = platform.new_token("json-stream-viewer", "viewer")
    status, answer, _ = call(platform, "modelog.artifacts.v1.Artifacts/VerifyStore", {}, token=viewer)
    assert status == 403 and answer["error"]["status"] == "PERMISSION_DENIED"
    status, answer, _ = call(platform, "modelog.eventlog.v1.EventLog/ReadLog", {"service": "nothing"})
    assert status == 404, answer


class _Following:
    """A server stream that never ends on its own, as Tail and Subscribe do: its items (an exception
    is raised), then nothing for ever."""

    def __init__(self, items: list[Any]) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        for item in items:
            self.queue.put_nowait(item)
        self.cancelled = False

    def __aiter__(self) -> _Following:
        return self

    async def __anext__(self) -> Any:
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class _Channel:
    def __init__(self, *items: Any) -> None:
        self.items = list(items)
        self.calls: list[_Following] = []

    def unary_stream(self, path: str, **_: Any) -> Any:
        def start(request: Any, metadata: Any) -> _Following:
            self.calls.append(_Following(self.items))
            return self.calls[-1]

        return start


def _event(position: int) -> Any:
    return jsonapi.served()["modelog.eventlog.v1.EventLog/Tail"].response(
        service="tracking", position=position
    )


async def _tail(channel: _Channel, leave_after: int) -> list[dict[str, Any]]:
    """One SSE request to the app over a fake channel; the client leaves after `leave_after` events
    (0: the connection is gone before the first byte, -1: it stays to the end)."""
    app = Starlette(routes=jsonapi.routes(cast(Upstream, SimpleNamespace(channel=channel))))
    path = f"{API}/modelog.eventlog.v1.EventLog/Tail"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", b"Bearer t"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "http.request", "body": b'{"service": "tracking"}', "more_body": False})
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if leave_after == 0:
            raise OSError("the connection is gone")  # as a server reports a client gone at once
        sent.append(message)
        if sum(1 for m in sent if m.get("body")) == leave_after:
            inbox.put_nowait({"type": "http.disconnect"})

    try:
        await asyncio.wait_for(app(scope, inbox.get, send), 10)
    except OSError:
        assert leave_after == 0
    return sent


async def test_the_upstream_stream_is_cancelled_when_the_http_client_leaves() -> None:
    channel = _Channel(_event(1), _event(2))
    sent = await _tail(channel, leave_after=2)
    assert sent[0]["status"] == 200
    bodies = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    assert [data["position"] for _, data in events(bodies)] == ["1", "2"]
    assert len(channel.calls) == 1 and channel.calls[0].cancelled


async def test_the_upstream_stream_is_cancelled_when_the_client_leaves_before_the_first_byte() -> None:
    channel = _Channel(_event(1))
    await _tail(channel, leave_after=0)
    assert len(channel.calls) == 1 and channel.calls[0].cancelled


async def test_a_failure_mid_stream_is_an_error_event() -> None:
    failure = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "the log went away"
    )
    channel = _Channel(_event(1), failure)
    sent = await _tail(channel, leave_after=-1)
    got = events(b"".join(m.get("body", b"") for m in sent[1:]).decode())
    assert got[0][1]["position"] == "1"
    assert got[1][0] == "error" and got[1][1]["error"]["status"] == "UNAVAILABLE"
    assert got[1][1]["error"]["message"] == "the log went away" and len(got) == 2


def test_a_following_stream_through_the_server_gives_its_first_event(platform: Platform) -> None:
    url = urlsplit(platform.http)
    body = json.dumps({"service": "tracking", "fromPosition": "1"}).encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(
            f"POST {API}/modelog.eventlog.v1.EventLog/Tail HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {platform.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        seen = b""
        while b"data: " not in seen.partition(b"\r\n\r\n")[2]:
            chunk = s.recv(65536)
            assert chunk, seen
            seen += chunk
    assert seen.startswith(b"HTTP/1.1 200") and b"text/event-stream" in seen, seen[:300]
    assert ok(platform, "modelog.identity.v1.Identity/WhoAmI")["actor"] == "admin"


def test_a_client_stream_takes_a_json_array_or_ndjson(platform: Platform) -> None:
    run = ok(
        platform,
        "modelog.tracking.v1.Tracking/StartRun",
        {"experimentName": "json-metrics", "createExperiment": True},
    )
    run_id = run["run"]["info"]["runId"]
    batches = [
        {"runId": run_id, "keys": ["loss", "loss"], "values": [0.9, 0.7], "steps": ["1", "2"]},
        {"runId": run_id, "keys": ["loss"], "values": ["NaN"], "steps": [3]},
    ]
    reply = ok(platform, "modelog.tracking.v1.Tracking/LogMetrics", batches)
    assert reply["batches"] == "2" and reply["points"] == "3", reply
    ndjson = "\n".join(
        json.dumps({"runId": run_id, "keys": ["acc"], "values": [v], "steps": [i]})
        for i, v in enumerate((0.5, 0.6))
    ).encode()
    status, reply, _ = call(
        platform, "modelog.tracking.v1.Tracking/LogMetrics", raw=ndjson, Content_Type="application/x-ndjson"
    )
    assert status == 200 and reply["points"] == "2", reply
    history = ok(platform, "modelog.tracking.v1.Tracking/GetMetricHistory", {"runId": run_id, "key": "loss"})
    assert history["steps"] == ["1", "2", "3"] and history["values"] == [0.9, 0.7, "NaN"], history

    before = platform.heads()
    status, answer, _ = call(platform, "modelog.tracking.v1.Tracking/LogMetrics", [batches[0], {"runId": 7}])
    assert status == 400 and "[1].runId" in violations(answer), answer
    assert platform.heads() == before  # every message is checked before any is sent


def test_a_bidi_stream_takes_an_array_and_answers_as_events(platform: Platform) -> None:
    data = b"bytes through the JSON API"
    digest = hashlib.sha256(data).hexdigest()
    upload = [
        {"open": {"digest": digest, "size": str(len(data))}},
        {"chunk": {"offset": "0", "data": base64.b64encode(data).decode(), "crc32": zlib.crc32(data)}},
    ]
    status, text, _ = call(platform, "modelog.artifacts.v1.Artifacts/Upload", upload)
    assert status == 200, text
    got = events(text)
    assert got[-1][0] == "end" and got[-2][1]["stored"] is True and got[-2][1]["digest"] == digest, got
    status, text, _ = call(
        platform, "modelog.artifacts.v1.Artifacts/Download", {"ranges": [{"digest": digest}]}
    )
    chunks = [base64.b64decode(m.get("data", "")) for name, m in events(text) if name == "message"]
    assert status == 200 and b"".join(chunks) == data, text[:500]


def test_the_openapi_document_is_valid_3_1_and_lists_every_method(platform: Platform) -> None:
    status, doc, headers = call(platform, "openapi.json", token=None, http="GET")
    assert status == 200 and headers["content-type"] == "application/json"
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {f"{API}{path}" for path in permissions.rules()}
    assert len(doc["paths"]) == len(permissions.rules())
    schemas = doc["components"]["schemas"]
    start = schemas["modelog.tracking.v1.StartRunRequest"]["properties"]
    assert start["startTimeMs"]["type"] == "string" and start["startTimeMs"]["format"] == "int64"
    assert start["tags"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert schemas["modelog.tracking.v1.StartRunRequest"]["x-oneofs"] == {
        "experiment": ["experimentId", "experimentName"]
    }
    head = schemas["modelog.eventlog.v1.HeadResponse"]["properties"]
    assert head["lastRecordedAt"]["format"] == "date-time" and head["hash"]["contentEncoding"] == "base64"
    status_enum = schemas["modelog.tracking.v1.RunInfo"]["properties"]["status"]
    assert schemas[status_enum["$ref"].rsplit("/", 1)[1]]["type"] == "string"
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "basic"}
    tail = doc["paths"][f"{API}/modelog.eventlog.v1.EventLog/Tail"]["post"]
    assert "text/event-stream" in tail["responses"]["200"]["content"]
    log_metrics = doc["paths"][f"{API}/modelog.tracking.v1.Tracking/LogMetrics"]["post"]
    assert log_metrics["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"


def test_an_idempotency_key_makes_a_retry_write_once(platform: Platform) -> None:
    create = "modelog.tracking.v1.Tracking/CreateExperiment"
    key = f"json-{uuid.uuid4().hex}"
    first = ok(platform, create, {"name": "json-idempotent"}, Idempotency_Key=key)
    after_first = platform.heads()
    again = ok(platform, create, {"name": "json-idempotent"}, Idempotency_Key=key)
    assert again == first
    assert platform.heads() == after_first
    status, answer, _ = call(platform, create, {"name": "json-idempotent"}, Idempotency_Key=f"{key}-2")
    assert status == 409 and answer["error"]["status"] == "ALREADY_EXISTS", answer


def test_a_client_stream_refused_midway_reports_the_refusal_not_an_internal_error(platform: Platform) -> None:
    """The server reads what the client still sends before it ends the call: otherwise grpc's asyncio
    client (the gateway's) turns a refusal into INTERNAL "Internal error from Core" when one of its
    writes races the end (grpc/grpc#36066), a 500 about one time in twenty."""
    refused = [{"batch": {"blobs": [{"digest": "not-a-digest", "data": "eA=="}]}}] + [{"open": {}}] * 30
    statuses = [call(platform, "modelog.artifacts.v1.Artifacts/Upload", refused)[0] for _ in range(40)]
    assert set(statuses) == {400}, statuses
