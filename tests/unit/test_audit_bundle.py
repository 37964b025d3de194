"""The compliance bundle verifies offline, and any change to an event is caught at its position."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlog.records import RecordedEvent
from modelog.shared.audit.verify import Outcome, verify_bytes
from modelog.shared.hashchain import GENESIS, canonical_bytes, link, micros
from modelog_services.audit.bundle import BundleWriter
from modelog_services.audit.signing import SigningKey

KEY = SigningKey(Ed25519PrivateKey.generate())
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def chain(log: str, items: list[tuple[str, str, dict[str, object], str]]) -> list[RecordedEvent]:
    """(stream, type, payload, actor) -> recorded events with a valid hash chain."""
    out: list[RecordedEvent] = []
    prev = GENESIS
    versions: dict[str, int] = {}
    for i, (stream, etype, payload, actor) in enumerate(items, start=1):
        versions[stream] = versions.get(stream, 0) + 1
        at = T0 + timedelta(seconds=i)
        pj, mj, eid = (
            json.dumps(payload, separators=(",", ":")),
            json.dumps({"actor": actor}),
            str(uuid.uuid4()),
        )
        h = link(prev, canonical_bytes(log, i, stream, versions[stream], eid, etype, 1, micros(at), pj, mj))
        out.append(RecordedEvent(log, i, stream, versions[stream], eid, etype, 1, pj, mj, at, prev, h))
        prev = h
    return out


LOGS = {
    "tracking": chain(
        "tracking",
        [(f"run-{i % 3}", "MetricsLogged", {"i": i, "note": "é\u2603"}, "alice") for i in range(12)],
    ),
    "registry": chain(
        "registry",
        [
            ("model-m1", "ModelRegistered", {"model_id": "m1", "name": "churn"}, "alice"),
            (
                "model-m1",
                "TransitionRequested",
                {"request_id": "r1", "version": 1, "to_stage": "Production"},
                "alice",
            ),
            ("model-m1", "TransitionApproved", {"request_id": "r1", "version": 1, "by": "bob"}, "bob"),
            (
                "model-m1",
                "VersionStageChanged",
                {"version": 1, "from_stage": "None", "to_stage": "Production", "request_id": "r1"},
                "system",
            ),
        ],
    ),
    "monitoring": [],
}


def bundle(logs: dict[str, list[RecordedEvent]] = LOGS, key: SigningKey = KEY, skip: int = 0) -> bytes:
    """A bundle of each log from position skip+1 (anchored on the event before)."""
    w = BundleWriter()
    parts = [w.header(list(logs), "2026-03-02T00:00:00Z", {"from": None, "to": None, "model": None})]
    for name, events in logs.items():
        part = events[skip:]
        anchor = events[skip - 1].hash if skip and events else GENESIS
        parts.append(w.begin_log(name, skip + 1 if events else 1, anchor))
        parts.append(w.events(part, None))
    parts.append(w.finish(KEY.sign if key is KEY else key.sign, key.raw_public, key.key_id))
    return b"".join(parts)


def lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def event_lines(data: bytes) -> list[tuple[int, str, int]]:
    """(line index, log, position) of every event row."""
    out, log = [], ""
    for i, raw in enumerate(lines(data)):
        if raw.startswith(b'{"kind":"log"'):
            log = json.loads(raw)["log"]
        elif raw.startswith(b"["):
            out.append((i, log, json.loads(raw)[1]))
    return out


def test_a_bundle_verifies_and_summarises_actors_types_and_approvals() -> None:
    out = verify_bytes(bundle(), KEY.public)
    assert out.ok, out.reason
    assert out.events == 16 and out.key_pinned
    assert out.summary["actors"] == {"alice": 14, "bob": 1, "system": 1}
    assert out.summary["types"]["registry.TransitionApproved"] == 1
    assert [a["type"] for a in out.summary["approvals"]] == [
        "TransitionRequested",
        "TransitionApproved",
        "VersionStageChanged",
    ]
    assert [a["actor"] for a in out.summary["production_changes"]] == ["system"]
    assert out.manifest["monitoring"]["count"] == 0


def test_a_range_verifies_from_its_anchor() -> None:
    out = verify_bytes(bundle(skip=2), KEY.public)
    assert out.ok, out.reason
    assert out.manifest["tracking"]["first"] == 3


def test_no_approvals_is_fine() -> None:
    out = verify_bytes(bundle({"tracking": LOGS["tracking"]}), None)
    assert out.ok and not out.key_pinned and out.summary["approvals"] == []


def broken(out: Outcome, log: str, position: int) -> None:
    assert not out.ok
    assert (out.log, out.position) == (log, position), out.reason


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_changing_any_byte_of_any_event_names_its_position(data: st.DataObject) -> None:
    original = bundle()
    rows = event_lines(original)
    idx, log, position = data.draw(st.sampled_from(rows))
    ls = lines(original)
    raw = bytearray(ls[idx])
    at = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[at]))
    raw[at] = new
    ls[idx] = bytes(raw)
    out = verify_bytes(b"".join(ls), KEY.public)
    broken(out, log, position)


def test_removing_an_event_names_its_position() -> None:
    for idx, log, position in event_lines(bundle()):
        ls = lines(bundle())
        del ls[idx]
        broken(verify_bytes(b"".join(ls), KEY.public), log, position)


def test_reordering_two_events_names_the_first() -> None:
    rows = event_lines(bundle())
    for (a, log, position), (b, log2, _) in itertools.pairwise(rows):
        if log != log2:
            continue
        ls = lines(bundle())
        ls[a], ls[b] = ls[b], ls[a]
        broken(verify_bytes(b"".join(ls), KEY.public), log, position)


def test_a_bundle_signed_by_another_key_fails_against_the_platform_key() -> None:
    other = SigningKey(Ed25519PrivateKey.generate())
    out = verify_bytes(bundle(key=other), KEY.public)
    assert not out.ok and "not by the expected key" in out.reason


def test_replacing_the_signature_fails() -> None:
    ls = lines(bundle())
    sig = json.loads(ls[-1])
    sig["signature"] = SigningKey(Ed25519PrivateKey.generate()).sign(b"x").hex()
    ls[-1] = (json.dumps(sig, separators=(",", ":")) + "\n").encode()
    out = verify_bytes(b"".join(ls), None)
    assert not out.ok and "signature does not verify" in out.reason


@pytest.mark.parametrize("kind", ["manifest", "summary"])
def test_editing_the_manifest_or_summary_fails(kind: str) -> None:
    ls = lines(bundle())
    i = next(i for i, raw in enumerate(ls) if raw.startswith(f'{{"kind":"{kind}"'.encode()))
    ls[i] = ls[i].replace(b"alice", b"mallory").replace(b'"count":12', b'"count":11')
    assert not verify_bytes(b"".join(ls), KEY.public).ok


def test_a_truncated_bundle_fails() -> None:
    data = bundle()
    assert not verify_bytes(data[: len(data) // 2], KEY.public).ok


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("e"), st.integers(0, 10**12), st.text(), st.text(alphabet='],["\\ex,')),
            st.tuples(st.just("x"), st.integers(0, 10**12), st.text(alphabet='],["\\'), st.text()),
        ).map(list),
        min_size=1,
        max_size=8,
    )
)
def test_a_batch_encodes_to_exactly_one_line_per_row(rows: list[list[object]]) -> None:
    from modelog.shared.audit.bundle import encode, rows_to_lines

    assert rows_to_lines(rows) == "".join(encode(r) + "\n" for r in rows)


def test_a_public_key_file_whose_path_is_64_characters_long_is_read_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelog.shared.audit.keys import load_public_key, public_pem, raw_public

    monkeypatch.chdir(tmp_path)
    name = "k" * 60 + ".pub"
    Path(name).write_text(public_pem(KEY.public))
    assert raw_public(load_public_key(name)) == KEY.raw_public
    assert raw_public(load_public_key(KEY.raw_public.hex())) == KEY.raw_public
