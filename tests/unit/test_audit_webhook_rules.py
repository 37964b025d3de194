"""Webhooks without I/O: the decider (given / when / then), the address guard, signatures, backoff
and the CloudEvents structured encoding."""

from __future__ import annotations

import base64
import ipaddress
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook as SpecVerifier

from eventlog import AlreadyExists, InvalidArgument, NotFound, RecordedEvent
from eventlog.cloudevents import from_message, to_headers, to_structured
from modelog_services.audit.dispatcher import ModelMatch, backoff
from modelog_services.audit.domain import (
    CreateWebhook,
    DeleteWebhook,
    DisableWebhook,
    EnableWebhook,
    UpdateWebhook,
    check_filter,
    webhook,
)
from modelog_services.audit.events import (
    WebhookCreated,
    WebhookDeleted,
    WebhookDisabled,
    WebhookEnabled,
    WebhookFilterValue,
    WebhookUpdated,
)
from modelog_services.audit.ssrf import AllowList, why_blocked
from modelog_services.audit.webhook_http import generate_secret, secret_key, signed_headers

F = WebhookFilterValue(types=("registry.TransitionApproved",))
CREATED = WebhookCreated(
    webhook_id="w1", url="https://ci.example.com/h", filter=F, secret_fingerprint="fp1", start={"registry": 7}
)
LOGS = ("tracking", "registry", "audit")


def create(url: str = "https://ci.example.com/h") -> CreateWebhook:
    return CreateWebhook("w1", url, F, "", "fp1", {"registry": 7})


# ---------------------------------------------------------------- the decider


def test_create_records_the_registration_without_the_secret() -> None:
    [event] = webhook.decide(create(), webhook.initial)
    assert event == CREATED
    assert "whsec" not in event.payload_json()


def test_a_webhook_id_is_created_once() -> None:
    with pytest.raises(AlreadyExists):
        webhook.decide(create(), webhook.fold([CREATED]))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://ci.example.com/", "only http and https"),
        ("https:///nohost", "names no host"),
        ("https://user:pw@ci.example.com/", "credentials"),
        ("", "required"),
    ],
)
def test_bad_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        webhook.decide(create(url), webhook.initial)


def test_update_records_only_what_changed() -> None:
    state = webhook.fold([CREATED])
    when = UpdateWebhook(url="https://ci.example.com/h", description="deploys", secret_fingerprint="fp2")
    assert webhook.decide(when, state) == [
        WebhookUpdated(webhook_id="w1", description="deploys", secret_fingerprint="fp2")
    ]
    assert webhook.decide(UpdateWebhook(url="https://ci.example.com/h"), state) == []


def test_disable_then_enable_and_both_are_idempotent() -> None:
    disabled = WebhookDisabled(webhook_id="w1", reason="5 consecutive deliveries failed", failures=5)
    assert webhook.decide(DisableWebhook(disabled.reason, 5), webhook.fold([CREATED])) == [disabled]
    assert webhook.decide(DisableWebhook("again"), webhook.fold([CREATED, disabled])) == []
    assert webhook.decide(EnableWebhook(), webhook.fold([CREATED, disabled])) == [
        WebhookEnabled(webhook_id="w1")
    ]
    assert webhook.decide(EnableWebhook(), webhook.fold([CREATED])) == []


def test_a_deleted_or_unknown_webhook_is_not_found() -> None:
    deleted = webhook.fold([CREATED, WebhookDeleted(webhook_id="w1")])
    for command in (
        EnableWebhook(),
        DisableWebhook("x"),
        UpdateWebhook(url="https://x.example/"),
        DeleteWebhook(),
    ):
        with pytest.raises(NotFound):
            webhook.decide(command, deleted)
        with pytest.raises(NotFound):
            webhook.decide(command, webhook.initial)


def test_filters_name_known_logs_and_well_formed_types() -> None:
    with pytest.raises(InvalidArgument, match="unknown: nope"):
        check_filter(WebhookFilterValue(services=("nope",)), LOGS)
    with pytest.raises(InvalidArgument, match=r"is not `service\.Type`"):
        check_filter(WebhookFilterValue(types=("registry.Transition Approved",)), LOGS)
    with pytest.raises(InvalidArgument, match="registry log"):
        check_filter(WebhookFilterValue(services=("tracking",), models=("churn",)), LOGS)
    assert check_filter(F, LOGS) == F


# ---------------------------------------------------------------- the address guard


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-global"),
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_non_public_addresses_are_blocked(address: str, kind: str) -> None:
    assert why_blocked(ipaddress.ip_address(address)) == kind


def test_public_addresses_pass_and_the_allow_list_names_hosts_and_networks() -> None:
    assert why_blocked(ipaddress.ip_address("140.82.112.3")) is None
    allow = AllowList.parse(" 127.0.0.1, 10.0.0.0/8 ,hooks.internal.")
    assert allow.allows("127.0.0.1", ipaddress.ip_address("127.0.0.1"))
    assert allow.allows("x", ipaddress.ip_address("10.9.9.9"))
    assert allow.allows("HOOKS.internal", ipaddress.ip_address("192.168.0.1"))
    assert not allow.allows("other", ipaddress.ip_address("192.168.0.1"))


# ---------------------------------------------------------------- signatures and encoding


def _event(payload: str = '{"request_id":"r1","version":1}') -> RecordedEvent:
    return RecordedEvent(
        "registry",
        42,
        "model-m1",
        3,
        "0b8c6c1e-6f0a-4a7e-9d43-6d2f4a1b9e10",
        "TransitionApproved",
        1,
        payload,
        '{"actor":"bob"}',
        datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        b"\x01" * 32,
        b"\x02" * 32,
    )


def test_structured_cloudevent_carries_what_the_binary_mode_carries() -> None:
    ev = _event()
    body = json.loads(to_structured(ev))
    assert body["data"] == {"request_id": "r1", "version": 1}
    headers = {k.removeprefix("ce_"): v.decode() for k, v in to_headers(ev, None)}
    headers["datacontenttype"] = headers.pop("content-type")
    assert {k: v for k, v in body.items() if k != "data"} == headers
    # Decoding the structured attributes as binary headers gives back the stored event exactly.
    as_headers = [
        (("content-type" if k == "datacontenttype" else f"ce_{k}"), str(v).encode())
        for k, v in body.items()
        if k != "data"
    ]
    assert from_message(ev.payload_json.encode(), as_headers) == ev


def test_signatures_verify_with_the_spec_library_and_fail_when_anything_changes() -> None:
    secret = generate_secret()
    key = secret_key(secret)
    assert len(key) == 32
    body = to_structured(_event())
    headers = signed_headers(key, "0b8c6c1e-6f0a-4a7e-9d43-6d2f4a1b9e10", body)
    assert headers["webhook-signature"].startswith("v1,")
    SpecVerifier(secret).verify(body, headers)
    with pytest.raises(Exception, match="signature"):
        SpecVerifier(secret).verify(body.replace(b"r1", b"r2"), headers)
    with pytest.raises(Exception, match="signature"):
        SpecVerifier(generate_secret()).verify(body, headers)
    with pytest.raises(Exception, match="signature"):
        SpecVerifier(secret).verify(body, {**headers, "webhook-id": "another"})


def test_the_spec_example_signature_is_reproduced() -> None:
    # From the Standard Webhooks specification's test vectors.
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    got = signed_headers(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", body, 1614265330)["webhook-signature"]
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_secrets_must_be_whsec_base64_of_enough_bytes() -> None:
    for bad, why in [
        ("hunter2", "whsec_"),
        ("whsec_!!!", "not base64"),
        ("whsec_" + base64.b64encode(b"x" * 8).decode(), "8 bytes"),
    ]:
        with pytest.raises(InvalidArgument, match=why):
            secret_key(bad)


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    samples = [backoff(5, 1.0, 300.0) for _ in range(2000)]
    assert 0.0 <= min(samples) < 1.0 and 14.0 < max(samples) <= 16.0
    assert all(backoff(30, 1.0, 300.0) <= 300.0 for _ in range(100))
    assert max(backoff(1, 1.0, 300.0) for _ in range(200)) <= 1.0


def test_model_filter_learns_the_streams_of_a_named_model_and_forgets_a_rename() -> None:
    m = ModelMatch(["churn"])

    def reg(etype: str, stream: str, name: str) -> RecordedEvent:
        return RecordedEvent(
            "registry",
            1,
            stream,
            1,
            "e",
            etype,
            1,
            json.dumps({"name": name}),
            "{}",
            datetime.now(UTC),
            b"",
            b"",
        )

    m.see(reg("ModelRegistered", "model-a1", "churn"))
    m.see(reg("ModelRegistered", "model-b2", "fraud"))
    assert m.match(reg("AliasSet", "model-a1", "")) and not m.match(reg("AliasSet", "model-b2", ""))
    m.see(reg("ModelRenamed", "model-a1", "churn-v2"))
    assert not m.match(reg("AliasSet", "model-a1", ""))
