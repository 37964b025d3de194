"""What a registry command's inputs may be: names, aliases, ids, texts, tags, signatures, policies,
and the stream ids they map to. Shared by the deciders and the read side (which parses the same names).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import NoReturn

from eventlog import InvalidArgument
from modelog.shared.inputs import parse_json

from .events import TARGET_STAGES, ModelPolicy

MAX_NAME = 250
MAX_DESCRIPTION = 65_536
MAX_TAGS = 100
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 5_000
MAX_COMMENT = 5_000
MAX_FRAMEWORK = 100
MAX_SIGNATURE = 65_536
MAX_ALIASES = 100
MAX_STREAM_ID = 200  # eventlog.store's limit
LATEST = "latest"

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,248}[A-Za-z0-9._-])?\Z")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}\Z")
_VERSIONISH = re.compile(r"^v\d+\Z")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_TAG_KEY = re.compile(r"^[\w.\-/: ]+\Z")


def invalid(name: str, why: str) -> NoReturn:
    raise InvalidArgument.field(name, why)


def check_model_name(value: str, field_name: str = "name") -> str:
    if not value:
        invalid(field_name, "a model name is required")
    if len(value) > MAX_NAME or not _NAME.match(value):
        invalid(
            field_name,
            f"{value[:300]!r} is not a model name: 1-{MAX_NAME} of A-Z a-z 0-9 . _ - and spaces, "
            "starting with a letter or digit and not ending with a space",
        )
    return value


def check_alias(value: str, field_name: str = "alias") -> str:
    if value == LATEST:
        invalid(field_name, "'latest' always means the newest version and cannot be set or removed")
    if _VERSIONISH.match(value):
        invalid(field_name, f"{value!r} looks like a version number; pick a name such as 'champion'")
    if not _ALIAS.match(value):
        invalid(field_name, f"{value[:100]!r} is not an alias: 1-64 of a-z 0-9 _ -, starting with a letter")
    return value


def check_id(field_name: str, value: str) -> str:
    if not _ID.match(value):
        invalid(
            field_name, f"{value[:200]!r} is not an id: 1-128 of A-Z a-z 0-9 . _ -, starting alphanumeric"
        )
    return value


def check_text(field_name: str, value: str, limit: int) -> str:
    if len(value) > limit:
        invalid(field_name, f"is {len(value)} characters long; the limit is {limit}")
    return value


def check_tags(field_name: str, tags: Mapping[str, str], keys: Sequence[str] = ()) -> None:
    if len(tags) + len(keys) > MAX_TAGS:
        invalid(field_name, f"{len(tags) + len(keys)} tags in one call; the limit is {MAX_TAGS}")
    for key in [*tags, *keys]:
        if not key or len(key) > MAX_TAG_KEY or not _TAG_KEY.match(key):
            invalid(
                f"{field_name}[{key[:100]!r}]",
                f"a tag key is 1-{MAX_TAG_KEY} of letters, digits, '_', '-', '.', ' ', ':' and '/'",
            )
    for key, value in tags.items():
        check_text(f"{field_name}[{key!r}]", value, MAX_TAG_VALUE)


def check_signature(value: str) -> None:
    check_text("signature", value, MAX_SIGNATURE)
    if value:
        try:
            parse_json(value)
        except ValueError as exc:
            invalid("signature", f"is not JSON: {exc}")


def check_policy(policy: ModelPolicy) -> None:
    for stage in TARGET_STAGES:
        p = policy.for_stage(stage)
        where = f"policy.{stage.lower()}"
        if not p.from_stages:
            invalid(f"{where}.from_stages", f"name at least one stage a version may enter {stage} from")
        if stage in p.from_stages:
            invalid(f"{where}.from_stages", f"a version cannot move from {stage} to {stage}")


# ---------------------------------------------------------------- stream ids


def model_stream_id(model_id: str) -> str:
    return f"model-{model_id}"


def model_name_stream_id(name: str) -> str:
    """`model-name-<name>`; a name the log cannot hold as a stream id uses `model-name#sha256:<hex>`."""
    plain = f"model-name-{name}"
    if len(plain) <= MAX_STREAM_ID and plain.isprintable():
        return plain
    return f"model-name#sha256:{hashlib.sha256(name.encode()).hexdigest()}"
