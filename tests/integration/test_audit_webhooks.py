"""Webhooks against a real platform (PostgreSQL) and a real HTTP receiver on 127.0.0.1 (allow-listed):
signed deliveries verified by `standardwebhooks` and by the example receiver, retries logged, disable
and re-enable, the address guard, redelivery, order, and a restart mid-retry."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from standardwebhooks import Webhook as SpecVerifier

from eventlog import EventStore, Metadata, NewEvent, create_log
from modelog import audit, errors, webhooks
from modelog._client import Connection
from modelog.shared.settings import SERVICES, Settings
from modelog_platform.app import Platform, Server, start_server
from modelog_services.audit.dispatcher import Dispatcher, Policy
from modelog_services.audit.main import LOGS, PlatformReader
from modelog_services.audit.ssrf import AllowList
from tests.conftest import dsn_for_database
from tests.contracts import assert_rebuild_equals_live
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio
ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- a receiver the tests control


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class Receiver:
    """POST /<name>: answers what `plan[name]` says (a status per call, then 204), records every hit."""

    hits: list[Hit] = field(default_factory=list)
    plan: dict[str, list[int]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def of(self, name: str, ok_only: bool = True) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == f"/{name}" and (h.status < 300 or not ok_only)]

    def answer(self, name: str) -> int:
        with self.lock:
            if name in self.down:
                return 503
            queue = self.plan.get(name)
            return queue.pop(0) if queue else 204


def serve(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as most receivers do

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = receiver.answer(self.path.lstrip("/"))
            with receiver.lock:
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.hits.append(Hit(self.path, headers, body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- the stack


FAST = {
    "webhook_allow": "127.0.0.1",
    "webhook_attempts": 3,
    "webhook_backoff_base_s": 0.02,
    "webhook_backoff_max_s": 0.05,
    "webhook_disable_after": 2,
}


class Stack:
    def __init__(self, platform: Platform, server: Server, admin: str, receiver: Receiver) -> None:
        self.platform, self.server, self.admin, self.receiver = platform, server, admin, receiver
        self.dispatcher: Dispatcher | None = None
        self.task: asyncio.Task[None] | None = None

    def conn(self) -> Connection:
        return Connection(f"127.0.0.1:{self.server.port}", self.admin)

    async def start_dispatcher(self, policy: Policy | None = None, platform: Platform | None = None) -> None:
        p = platform or self.platform
        self.dispatcher = Dispatcher(
            p.pool, p.stores, PlatformReader(p), LOGS, policy or Policy.of(self.platform.settings)
        )
        self.task = asyncio.create_task(self.dispatcher.run())
        await asyncio.wait_for(self.dispatcher.leader.wait(), 10)

    async def stop_dispatcher(self) -> None:
        """As if the process died: the task is cancelled wherever it is (mid-retry included)."""
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        def run() -> Any:
            with self.conn() as c:
                return fn(*args, connection=c, **kw)

        return await asyncio.to_thread(run)

    async def append(
        self, log: str, stream: str, etype: str, body: dict[str, Any], actor: str = "bob"
    ) -> None:
        await self.platform.stores[log].append(
            stream, None, [NewEvent(etype, 1, json.dumps(body))], Metadata(actor=actor)
        )

    async def approve(self, request: str, model: str = "m1") -> None:
        await self.append(
            "registry",
            f"model-{model}",
            "TransitionApproved",
            {"request_id": request, "version": 1, "by": "bob"},
        )

    async def logged(self, hook_id: str, n: int, within: float = 10.0) -> list[webhooks.Delivery]:
        async def enough() -> bool:
            return len(await self.call(webhooks.deliveries, hook_id)) >= n

        await wait_until_async(enough, within, f"{n} deliveries of {hook_id} in the delivery log")
        deliveries: list[webhooks.Delivery] = await self.call(webhooks.deliveries, hook_id)
        return deliveries

    async def hits(self, name: str, n: int, within: float = 30.0) -> list[Hit]:
        async def enough() -> bool:
            return len(self.receiver.of(name)) >= n

        try:
            await wait_until_async(enough, within, f"{n} deliveries to /{name}")
        except AssertionError:
            dump_dispatcher_tasks()
            raise
        return self.receiver.of(name)


def dump_dispatcher_tasks() -> None:
    """Where each webhook task stands, printed when a delivery does not come (to find hangs)."""
    for task in asyncio.all_tasks():
        if task.get_name().startswith("webhook"):
            print(f"--- task {task.get_name()} done={task.done()}", file=sys.stderr)
            obj: Any = task.get_coro()
            while obj is not None:  # the await chain, coroutine by coroutine (get_stack shows one)
                frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None)
                if frame is not None:
                    print(
                        f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}",
                        file=sys.stderr,
                    )
                obj = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None)


async def open_platform(dsn: str, home: Path, **settings: Any) -> Platform:
    """The audit service beside bare logs of the other services (synthetic events of any shape)."""
    s = Settings(home=home, addr="127.0.0.1:0", **settings)
    platform = await Platform.open(s, dsn, services=("audit",))
    async with platform.pool.acquire() as conn:
        for name in SERVICES:
            if name not in platform.stores:
                await create_log(conn, name)
                platform.stores[name] = EventStore(platform.pool, name)
    return platform


@pytest.fixture(scope="module")
async def stack(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    dsn = dsn_for_database(pg_dsn, name)
    receiver = Receiver()
    http = serve(receiver)
    platform = await open_platform(dsn, tmp_path_factory.mktemp("hooks"), **FAST)
    path = await platform.ensure_admin_token()
    server = await start_server(platform, "127.0.0.1:0")
    s = Stack(platform, server, path.read_text().strip(), receiver)
    s.dsn = dsn  # type: ignore[attr-defined]
    await s.start_dispatcher()
    yield s
    await s.stop_dispatcher()
    await server.stop(0)
    await platform.close()
    http.shutdown()
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


async def create(stack: Stack, name: str, **kw: Any) -> webhooks.Webhook:
    kw.setdefault("types", ["registry.TransitionApproved"])
    kw.setdefault("streams", [f"model-{name}"])
    hook: webhooks.Webhook = await stack.call(webhooks.create, stack.receiver.url(name), **kw)
    return hook


# ---------------------------------------------------------------- the tests


async def test_approval_arrives_as_a_signed_cloudevent_that_standardwebhooks_verifies(
    stack: Stack,
) -> None:
    hook = await create(stack, "ci")
    assert hook.secret.startswith("whsec_") and hook.enabled
    assert (await stack.call(webhooks.get, hook.id)).secret == ""  # shown once
    await stack.append("registry", "model-ci", "VersionAnnotated", {"version": 1})  # filtered out
    await stack.approve("r1", "ci")
    [hit] = await stack.hits("ci", 1)
    payload = SpecVerifier(hook.secret).verify(hit.body, hit.headers)  # raises unless valid
    assert payload["type"] == "dev.modelog.registry.TransitionApproved"
    assert payload["data"] == {"request_id": "r1", "version": 1, "by": "bob"}
    assert payload["specversion"] == "1.0" and payload["subject"] == "model-ci"
    assert json.loads(payload["metadata"])["actor"] == "bob"
    assert hit.headers["webhook-id"] == payload["id"]
    assert hit.headers["content-type"].startswith("application/cloudevents+json")

    from cloudevents.v1.http import from_http

    ce = from_http({"content-type": "application/cloudevents+json"}, hit.body)
    assert ce["id"] == payload["id"] and ce.data == payload["data"]

    forged = dict(hit.headers, **{"webhook-signature": "v1," + "A" * 44})
    with pytest.raises(Exception, match="signature"):
        SpecVerifier(hook.secret).verify(hit.body, forged)
    [d] = await stack.logged(hook.id, 1)  # logged in batches, off the delivery path
    assert d.status == "delivered" and d.attempts == 1 and d.response_code == 204 and d.kind == "dispatch"
    assert d.event_id == payload["id"] and d.position == int(payload["position"])


async def test_example_receiver_accepts_a_real_delivery_and_refuses_a_forged_one(stack: Stack) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the spec's example secret
    env = {"WEBHOOK_SECRET": secret, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once; its output is read in a thread
        [sys.executable, str(ROOT / "infra/examples/webhook_receiver.py"), "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 10)
        port = int(first.split()[-1])
        url = f"http://127.0.0.1:{port}/hook"
        hook = await stack.call(
            webhooks.create, url, types=["TransitionApproved"], streams=["model-ex"], secret=secret
        )
        assert hook.secret == secret
        await stack.approve("ex1", "ex")
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
        assert json.loads(line)["data"]["request_id"] == "ex1"

        async def delivered() -> bool:
            ds = await stack.call(webhooks.deliveries, hook.id)
            return bool(ds) and ds[0].status == "delivered" and ds[0].response_code == 204

        await wait_until_async(delivered, 10, "the delivery log to say 204")

        def forge() -> int:
            req = urllib.request.Request(
                url,
                data=b'{"id":"x"}',
                method="POST",
                headers={"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,Zm9yZ2Vk"},
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)

        assert await asyncio.to_thread(forge) == 401
        await stack.call(webhooks.delete, hook.id)
    finally:
        proc.kill()
        proc.wait()


async def test_failing_twice_then_succeeding_is_one_delivery_with_three_attempts(
    stack: Stack,
) -> None:
    stack.receiver.plan["flaky"] = [500, 502]
    hook = await create(stack, "flaky")
    await stack.approve("f1", "flaky")
    await stack.hits("flaky", 1)
    every = stack.receiver.of("flaky", ok_only=False)
    assert [h.status for h in every] == [500, 502, 204]
    assert len({h.headers["webhook-id"] for h in every}) == 1  # the same message, retried
    assert len({h.headers["webhook-signature"] for h in every}) >= 1
    for h in every:
        SpecVerifier(hook.secret).verify(h.body, h.headers)

    async def logged() -> bool:
        ds = await stack.call(webhooks.deliveries, hook.id)
        return bool(ds) and ds[0].status == "delivered"

    await wait_until_async(logged, 10, "the delivery to be logged")
    [d] = await stack.call(webhooks.deliveries, hook.id)
    assert d.attempts == 3 and d.event_id == every[0].headers["webhook-id"]
    assert [a.response_code for a in d.attempt_log] == [500, 502, 204]
    assert d.attempt_log[0].error == "HTTP 500"


async def test_disabled_after_a_run_of_failures_and_enable_resumes_where_it_stopped(stack: Stack) -> None:
    stack.receiver.down.add("down")
    hook = await create(stack, "down")
    await stack.approve("d1", "down")
    await stack.approve("d2", "down")

    async def disabled() -> bool:
        return not (await stack.call(webhooks.get, hook.id)).enabled

    await wait_until_async(disabled, 15, "the webhook to be disabled")
    got = await stack.call(webhooks.get, hook.id)
    assert got.failures == 2 and "2 consecutive deliveries failed" in got.disabled_reason
    events = await stack.platform.stores["audit"].read_stream(f"webhook-{hook.id}")
    assert [e.type for e in events] == ["WebhookCreated", "WebhookDisabled"]
    assert json.loads(events[-1].metadata_json)["actor"] == "system"
    tries = len(stack.receiver.of("down", ok_only=False))
    assert tries == 2 * FAST["webhook_attempts"]

    await stack.approve("d3", "down")  # while disabled: not sent, not lost
    await stack.approve("d4", "down")
    stack.receiver.down.discard("down")
    await stack.call(webhooks.enable, hook.id)
    hits = await stack.hits("down", 3)
    # d1 failed for good (logged, redeliverable); d2 tripped the disable and is sent first on enable.
    assert [h.event["data"]["request_id"] for h in hits] == ["d2", "d3", "d4"]
    failed = await stack.call(webhooks.deliveries, hook.id, status="failed")
    assert [d.event_type for d in failed] == ["TransitionApproved"] and failed[0].attempts == 3
    [again] = await stack.call(webhooks.redeliver, hook.id, delivery_id=failed[0].id)
    assert again.status == "delivered" and again.kind == "redelivery"
    last = stack.receiver.of("down")[-1]
    assert last.event["data"]["request_id"] == "d1" and last.headers["webhook-id"] == failed[0].event_id
    assert (await stack.call(webhooks.get, hook.id)).enabled


async def test_private_addresses_are_refused_unless_allow_listed(stack: Stack) -> None:
    audit_head = (await stack.platform.stores["audit"].head())[0]
    for url, kind in [
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10:8080/", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]:9000/", "loopback"),
        ("http://[fd00::1]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://127.0.0.2/", "loopback"),
    ]:
        with pytest.raises(errors.InvalidArgument) as info:
            await stack.call(webhooks.create, url, types=["X"])
        assert kind in info.value.message and "MODELOG_WEBHOOK_ALLOW" in info.value.message, (
            info.value.message
        )
    with pytest.raises(errors.InvalidArgument, match="only http and https"):
        await stack.call(webhooks.create, "ftp://127.0.0.1/x")
    assert (await stack.platform.stores["audit"].head())[0] == audit_head  # nothing written


async def test_the_address_is_checked_again_at_delivery_time(stack: Stack) -> None:
    await stack.stop_dispatcher()
    strict = dataclasses.replace(Policy.of(stack.platform.settings), allow=AllowList())
    await stack.start_dispatcher(strict)  # as if DNS now pointed the name somewhere private
    try:
        hook = await create(stack, "rebind")
        await stack.approve("x1", "rebind")

        async def blocked() -> bool:
            ds = await stack.call(webhooks.deliveries, hook.id)
            return bool(ds) and ds[0].attempts >= 1

        await wait_until_async(blocked, 10, "a blocked attempt in the delivery log")
        [d] = await stack.call(webhooks.deliveries, hook.id)
        assert d.response_code == 0 and "blocked" in d.last_error and "loopback" in d.last_error
        assert stack.receiver.of("rebind", ok_only=False) == []
        await stack.call(webhooks.delete, hook.id)
    finally:
        await stack.stop_dispatcher()
        await stack.start_dispatcher()


async def test_order_is_preserved_per_webhook_even_across_retries(stack: Stack) -> None:
    stack.receiver.plan["order"] = [204, 204, 500, 503]  # the third event needs three tries
    await create(stack, "order", types=[], streams=["order-*"], services=["tracking"])
    for i in range(12):
        await stack.append("tracking", f"order-{i % 3}", "MetricsLogged", {"i": i})
    hits = await stack.hits("order", 12)
    assert [h.event["data"]["i"] for h in hits] == list(range(12))
    positions = [int(h.event["position"]) for h in stack.receiver.of("order", ok_only=False)]
    assert positions == sorted(positions)  # nothing overtook the event being retried


async def test_redeliver_a_range_of_cursors(stack: Stack) -> None:
    hook = await create(stack, "range")
    for r in ("a", "b", "c"):
        await stack.approve(r, "range")
    first = await stack.hits("range", 3)
    with stack.conn() as c:
        history = await asyncio.to_thread(
            lambda: [e for e in audit.replay("start", connection=c) if e.stream_id == "model-range"]
        )
    after_a, through_b = history[0].cursor, history[1].cursor
    sent = await stack.call(webhooks.redeliver, hook.id, from_cursor=after_a, to_cursor=through_b)
    assert [d.status for d in sent] == ["delivered"] and sent[0].event_id == first[1].headers["webhook-id"]
    everything = await stack.call(webhooks.redeliver, hook.id, from_cursor="start")
    assert len(everything) == 3
    again = stack.receiver.of("range")[3:]
    assert [h.event["data"]["request_id"] for h in again] == ["b", "a", "b", "c"]
    assert [h.headers["webhook-id"] for h in again[1:]] == [h.headers["webhook-id"] for h in first]
    with pytest.raises(errors.InvalidArgument, match="cursor"):
        await stack.call(webhooks.redeliver, hook.id, from_cursor="c1.!!")


async def test_nothing_is_lost_when_the_audit_process_restarts_mid_retry(stack: Stack) -> None:
    await stack.stop_dispatcher()
    patient = dataclasses.replace(Policy.of(stack.platform.settings), attempts=50, base_s=0.05, max_s=0.05)
    await stack.start_dispatcher(patient)
    stack.receiver.down.add("restart")
    hook = await create(stack, "restart")
    await stack.approve("k1", "restart")

    async def retrying() -> bool:
        ds = await stack.call(webhooks.deliveries, hook.id)
        return bool(ds) and ds[0].status == "retrying" and ds[0].attempts >= 2

    await wait_until_async(retrying, 10, "the delivery to be mid-retry")
    await stack.stop_dispatcher()  # the process dies; only PostgreSQL remembers
    before = (await stack.call(webhooks.deliveries, hook.id))[0].attempts
    await stack.approve("k2", "restart")
    stack.receiver.down.discard("restart")
    # A new process: its own platform (pool, stores) on the same database.
    other = await open_platform(stack.dsn, stack.platform.settings.home, **FAST)  # type: ignore[attr-defined]
    try:
        await stack.start_dispatcher(patient, platform=other)
        hits = await stack.hits("restart", 2)
        assert [h.event["data"]["request_id"] for h in hits] == ["k1", "k2"]
        assert len({h.headers["webhook-id"] for h in hits}) == 2
        ds = await stack.call(webhooks.deliveries, hook.id)
        k1 = next(d for d in ds if d.event_id == hits[0].headers["webhook-id"])
        assert k1.status == "delivered" and k1.attempts == before + 1  # the count carried on
        await stack.stop_dispatcher()
    finally:
        await other.close()
        await stack.start_dispatcher()


def run_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as users run it, in its own process: a synchronous gRPC client in a thread of this
    process, beside the grpc.aio server, crashed grpc (a segfault in channel set-up) in some test orders."""
    env = {
        **os.environ,
        "MODELOG_URL": f"127.0.0.1:{stack.server.port}",
        "MODELOG_TOKEN": stack.admin,
    }
    return subprocess.run(
        [sys.executable, "-m", "modelog.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_cli_creates_lists_tests_and_shows_deliveries_as_json(stack: Stack) -> None:
    def cli(*args: str) -> Any:
        res = run_cli(stack, "webhooks", *args)
        assert res.returncode == 0, res.stdout + res.stderr
        return json.loads(res.stdout) if "--json" in args else res.stdout

    made = await asyncio.to_thread(
        cli, "create", stack.receiver.url("cli"), "--type", "registry.TransitionApproved", "--json"
    )
    assert made["secret"].startswith("whsec_")
    listed = await asyncio.to_thread(cli, "list", "--json")
    assert made["id"] in [w["id"] for w in listed] and all("secret" not in w for w in listed)
    ping = await asyncio.to_thread(cli, "test", made["id"], "--json")
    assert ping["status"] == "delivered" and ping["kind"] == "test"
    [hit] = stack.receiver.of("cli")
    assert (
        SpecVerifier(made["secret"]).verify(hit.body, hit.headers)["type"] == "dev.modelog.audit.WebhookPing"
    )
    shown = await asyncio.to_thread(cli, "deliveries", made["id"], "--json")
    assert shown[0]["kind"] == "test" and shown[0]["attempt_log"][0]["response_code"] == 204
    rotated = await asyncio.to_thread(
        cli, "update", made["id"], "--new-secret", "--description", "ci", "--json"
    )
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]
    assert rotated["description"] == "ci" and rotated["types"] == ["registry.TransitionApproved"]
    assert "disabled" in await asyncio.to_thread(cli, "disable", made["id"])
    assert (await asyncio.to_thread(cli, "show", made["id"], "--json"))["enabled"] is False
    await asyncio.to_thread(cli, "enable", made["id"])
    await asyncio.to_thread(cli, "delete", made["id"])
    res = await asyncio.to_thread(run_cli, stack, "webhooks", "show", made["id"])
    assert res.returncode == 1 and "NOT_FOUND" in res.stdout + res.stderr


async def test_replay_to_webhook_resigns_the_range_from_the_cli(stack: Stack) -> None:
    for r in ("p", "q"):
        await stack.approve(r, "replayed")
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    args = ["--from", "start", "--stream", "model-replayed", "--to-webhook", stack.receiver.url("replay")]
    res = await asyncio.to_thread(run_cli, stack, "events", "replay", *args, "--secret", secret)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "re-delivered 2 events" in res.stdout + res.stderr
    hits = stack.receiver.of("replay")
    assert [SpecVerifier(secret).verify(h.body, h.headers)["data"]["request_id"] for h in hits] == ["p", "q"]


async def test_a_viewer_may_not_create_webhooks_and_bad_requests_are_refused(stack: Stack) -> None:
    from modelog._gen.identity.v1 import identity_pb2

    def viewer_create() -> None:
        with stack.conn() as c:
            token = c.identity.CreateToken(identity_pb2.CreateTokenRequest(name="eve", roles=["viewer"]))
        with Connection(f"127.0.0.1:{stack.server.port}", token.secret) as c:
            webhooks.create(stack.receiver.url("x"), connection=c)

    with pytest.raises(errors.PermissionDenied, match="admin role"):
        await asyncio.to_thread(viewer_create)
    with pytest.raises(errors.InvalidArgument, match=r"filter\.services"):
        await stack.call(webhooks.create, stack.receiver.url("x"), services=["nope"])
    with pytest.raises(errors.InvalidArgument, match="whsec_"):
        await stack.call(webhooks.create, stack.receiver.url("x"), secret="hunter2")
    with pytest.raises(errors.InvalidArgument, match="credentials"):
        await stack.call(webhooks.create, "http://u:p@127.0.0.1/x")
    with pytest.raises(errors.NotFound, match="no webhook"):
        await stack.call(webhooks.enable, "0123456789abcdef")


async def test_rotating_the_secret_signs_new_deliveries_with_it_and_delete_erases_it(stack: Stack) -> None:
    hook = await create(stack, "rotate")
    await stack.approve("s1", "rotate")
    [old_hit] = await stack.hits("rotate", 1)
    rotated = await stack.call(webhooks.update, hook.id, new_secret=True, description="deploys")
    assert rotated.secret.startswith("whsec_") and rotated.secret != hook.secret
    assert rotated.secret_fingerprint != hook.secret_fingerprint and rotated.description == "deploys"

    async def signing_with_the_new_secret() -> bool:  # the dispatcher picks the change up from the log
        d = stack.dispatcher
        w = d.workers.get(hook.id) if d is not None else None
        return w is not None and w.config[2] == rotated.secret_fingerprint

    await wait_until_async(signing_with_the_new_secret, 15, "the worker to take the new secret")
    await stack.approve("s2", "rotate")
    hits = await stack.hits("rotate", 2)
    SpecVerifier(hook.secret).verify(old_hit.body, old_hit.headers)
    SpecVerifier(rotated.secret).verify(hits[1].body, hits[1].headers)
    with pytest.raises(Exception, match="signature"):
        SpecVerifier(hook.secret).verify(hits[1].body, hits[1].headers)
    pool = stack.platform.pool
    secrets_of = "SELECT count(*) FROM audit.webhook_secrets WHERE webhook_id = $1"
    assert await pool.fetchval(secrets_of, hook.id) == 1  # the old one is gone
    await stack.call(webhooks.delete, hook.id)
    assert await pool.fetchval(secrets_of, hook.id) == 0
    events = await stack.platform.stores["audit"].read_stream(f"webhook-{hook.id}")
    assert [e.type for e in events] == ["WebhookCreated", "WebhookUpdated", "WebhookDeleted"]
    assert not any(s in e.payload_json for e in events for s in (hook.secret, rotated.secret))
    assert hook.id not in [w.id for w in await stack.call(webhooks.list)]


async def test_a_model_filter_follows_the_model_by_name(stack: Stack) -> None:
    await stack.append("registry", "model-a7", "ModelRegistered", {"model_id": "a7", "name": "churn"})
    await stack.append("registry", "model-b7", "ModelRegistered", {"model_id": "b7", "name": "fraud"})
    hook = await stack.call(webhooks.create, stack.receiver.url("churn"), models=["churn"])
    await stack.append("registry", "model-b7", "AliasSet", {"alias": "champion", "version": 1})
    await stack.append("registry", "model-a7", "AliasSet", {"alias": "champion", "version": 2})
    [hit] = await stack.hits("churn", 1)
    assert hit.event["subject"] == "model-a7" and hit.event["data"]["version"] == 2
    await stack.call(webhooks.delete, hook.id)


async def test_the_platform_runs_the_dispatcher_with_the_audit_service(
    fresh_db: str, tmp_path: Path, stack: Stack
) -> None:
    from eventlog.sources import StoreReader

    platform = await open_platform(fresh_db, tmp_path, **FAST)
    path = await platform.ensure_admin_token()
    server = await start_server(platform, "127.0.0.1:0")
    platform.start_bus(None, StoreReader(platform.stores))  # what `modelog up` does, minus Kafka
    try:

        def make() -> webhooks.Webhook:
            with Connection(f"127.0.0.1:{server.port}", path.read_text().strip()) as c:
                return webhooks.create(stack.receiver.url("wired"), services=["tracking"], connection=c)

        await asyncio.to_thread(make)
        await platform.stores["tracking"].append("run-1", None, [NewEvent("RunStarted", 1, "{}")], Metadata())
        [hit] = await stack.hits("wired", 1)
        assert hit.event["type"] == "dev.modelog.tracking.RunStarted"
    finally:
        await platform.stop_bus()
        await server.stop(0)
        await platform.close()


async def test_the_webhooks_view_rebuilt_from_position_zero_equals_the_live_one(stack: Stack) -> None:
    from modelog_services.audit.webhook_store import WebhooksView

    hook = await create(stack, "rebuilt")
    await stack.call(webhooks.disable, hook.id, "maintenance")
    query = "SELECT * FROM audit.webhooks ORDER BY webhook_id"
    live = [dict(r) for r in await stack.platform.pool.fetch(query)]
    assert len(live) >= 3 and any(r["status"] == "disabled" for r in live)
    await assert_rebuild_equals_live(stack.platform.pool, WebhooksView(), stack.platform.stores, swap=True)


async def test_a_shared_tail_serves_readers_behind_and_at_the_head_without_gaps(stack: Stack) -> None:
    from modelog_services.audit.shared_tail import SharedTail

    store = stack.platform.stores["monitoring"]
    first = (await store.head())[0] + 1
    for i in range(30):
        await store.append(f"m-{i % 3}", None, [NewEvent("Thing", 1, "{}")], Metadata())
    tail = SharedTail(store, keep=8)  # keeps little: the reader from the start reads its own history

    async def read(start: int, n: int) -> list[int]:
        got: list[int] = []
        async for batch in tail.tail_batches(start, 7):
            got.extend(e.position for e in batch)
            if len(got) >= n:
                return got
        return got

    behind = asyncio.create_task(read(first, 60))
    at_head = asyncio.create_task(read(first + 30, 30))
    for i in range(30):
        await store.append(f"m-{i % 3}", None, [NewEvent("Thing", 1, "{}")], Metadata())
    assert await asyncio.wait_for(behind, 10) == list(range(first, first + 60))
    assert await asyncio.wait_for(at_head, 10) == list(range(first + 30, first + 60))
    await tail.close()
