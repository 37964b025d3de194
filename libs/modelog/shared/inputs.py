"""Text that comes from outside, checked the same way by every service: the characters a name or a
path may hold, and JSON documents a client sends (signatures, page tokens).

Pure and dependency-free, so the SDK (which validates manifests before uploading) pays nothing for it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)
"""Every character of the Unicode categories Cc (controls), Cf (invisible format characters) and
Zl/Zp (line and paragraph separators), except U+200C ZERO WIDTH NON-JOINER and U+200D ZERO WIDTH
JOINER, which join letters in Indic and Arabic scripts and build emoji. Spelled out rather than computed
(computing it costs 0.2 s at import); tests/unit/test_inputs.py checks it against unicodedata."""

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_character(text: str) -> tuple[int, str] | None:
    """Where `text` holds a character no name or path may hold, and what it is; None when it holds none.

    A control character breaks a line or drives a terminal (an ANSI escape colours whatever prints
    the name after it); a bidirectional control reorders what is shown ('invoice\\u202efdp.exe' shows
    as 'invoiceexe.pdf'); an invisible character makes two names that look the same. Letters of any
    script are fine: a name that mixes scripts is a name of its own, shown as it is.
    """
    bad = _UNSAFE.search(text)
    if bad is None:
        return None
    c = bad.group()
    code, name = f"U+{ord(c):04X}", unicodedata.name(c, "")
    if c in _BIDI:
        return bad.start(), f"the bidirectional control {code} ({name}, which reorders how text is shown)"
    if unicodedata.category(c) == "Cf":
        return bad.start(), f"the invisible format character {code} ({name})"
    if unicodedata.category(c) in ("Zl", "Zp"):
        return bad.start(), f"the line break {code} ({name})"
    return bad.start(), f"the control character {code}" + (f" ({name})" if name else "")


def parse_json(data: str | bytes) -> Any:
    """`json.loads` for a document a client sent: one nested too deep for the parser (some hundreds of
    levels, Python's recursion limit) is a ValueError like any other malformed document. json.loads
    raises RecursionError there, which callers catching ValueError let through as an internal error;
    the C decoder unwinds cleanly from it, so nothing else is disturbed."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("it nests deeper than this server reads (a few hundred levels)") from None
