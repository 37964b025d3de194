"""The shared rules for text from outside: which characters no name or path may hold, and JSON that
nests too deep for the parser is malformed JSON, wherever a service parses what a client sent."""

from __future__ import annotations

import base64
import sys
import unicodedata

import pytest

from eventlog import InvalidArgument
from modelog.shared.inputs import _UNSAFE, parse_json, unsafe_character
from modelog_services.audit.lineage_query import decode_page
from modelog_services.tracking.search import SortKey
from modelog_services.tracking.search import decode_token as tracking_decode_token

JOINERS = {"\u200c", "\u200d"}


def test_the_spelled_out_class_is_every_control_format_and_separator_character_but_the_joiners() -> None:
    unsafe = {chr(c) for c in range(sys.maxunicode + 1) if _UNSAFE.match(chr(c))}
    expected = {
        chr(c)
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp") and chr(c) not in JOINERS
    }
    assert expected <= unsafe
    # Extra members only where this Python's Unicode has no character yet (newer versions add them).
    assert {unicodedata.category(c) for c in unsafe - expected} <= {"Cn"}


@pytest.mark.parametrize(
    ("text", "position", "what"),
    [
        ("a\x00", 1, "the control character U+0000"),
        ("\x1b[31m", 0, "the control character U+001B"),
        ("ok\r\n", 2, "the control character U+000D"),
        ("a\x85", 1, "the control character U+0085"),
        ("x\u202ey", 1, "the bidirectional control U+202E (RIGHT-TO-LEFT OVERRIDE, which reorders"),
        ("\u2066x", 0, "the bidirectional control U+2066 (LEFT-TO-RIGHT ISOLATE"),
        ("pay\u200bpal", 3, "the invisible format character U+200B (ZERO WIDTH SPACE)"),
        ("\ufeffa", 0, "the invisible format character U+FEFF"),
        ("a\U000e0041", 1, "the invisible format character U+E0041 (TAG LATIN CAPITAL LETTER A)"),
        ("a\u2028b", 1, "the line break U+2028 (LINE SEPARATOR)"),
    ],
)
def test_an_unsafe_character_is_named_by_code_point_and_position(text: str, position: int, what: str) -> None:
    found = unsafe_character(text)
    assert found is not None and found[0] == position and found[1].startswith(what), found


@pytest.mark.parametrize(
    "text",
    ["paypal", "p\u0430ypal", "обучение", "模型", "\u0645\u062f\u0644", "\U0001f469\u200d\U0001f4bb", "a b"],
)
def test_letters_of_any_script_spaces_and_joined_emoji_are_safe(text: str) -> None:
    assert unsafe_character(text) is None


def test_json_deeper_than_the_parser_goes_is_malformed_json() -> None:
    assert parse_json('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    for deep in ("[" * 100_000, "[" * 5_000 + "]" * 5_000, '{"a":' * 50_000, b"[" * 100_000):
        with pytest.raises(ValueError, match="nests deeper"):
            parse_json(deep)


def test_a_forged_page_token_nested_deep_is_a_bad_page_token_everywhere() -> None:
    forged = base64.urlsafe_b64encode(b"[" * 100_000).decode()
    decoders = [
        lambda: decode_page(forged),
        lambda: tracking_decode_token(forged, "fp", [SortKey("experiment_id", "text", False)]),
    ]
    for decode in decoders:
        with pytest.raises(InvalidArgument) as info:
            decode()
        assert info.value.violations[0].field == "page_token"
