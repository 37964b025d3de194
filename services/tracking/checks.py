"""What tracking's commands may hold, MLflow-compatible: ids, names, keys, texts, entries, times; and
the stream ids of experiments, runs and experiment-name claims.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import NoReturn

from eventlog import InvalidArgument
from modelog.shared.inputs import unsafe_character

MAX_NAME = 250
MAX_KEY = 250
MAX_PARAM_VALUE = 6_000
MAX_TAG_VALUE = 8_000
MAX_ENTRIES_PER_COMMAND = 1_000
MAX_METRIC_POINTS = 100_000
MAX_DATASET_NAME = 500
MAX_DIGEST = 128
MAX_DATASET_SOURCE = 65_535
MAX_DATASET_DOCUMENT = 1_048_575
MAX_INPUT_TAG_KEY = 255
MAX_INPUT_TAG_VALUE = 500
MAX_INPUT_TAGS = 100
MAX_STREAM_ID = 200  # eventlog.store's limit
INT64 = 2**63

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_KEY = re.compile(r"^[/\w.\- :]+\Z")


def invalid(name: str, why: str) -> NoReturn:
    raise InvalidArgument.field(name, why)


def check_id(name: str, value: str) -> str:
    if not _ID.match(value):
        invalid(name, f"{value!r} is not an id: 1-128 of A-Z a-z 0-9 . _ -, starting alphanumeric")
    return value


def check_name(name: str, value: str, limit: int = MAX_NAME) -> str:
    """A person-given name: 1..limit characters (250 unless said otherwise), none of them a control,
    bidirectional or invisible character (eventlog.inputs); letters of any script are fine."""
    if not value:
        invalid(name, "must not be empty")
    if len(value) > limit:
        invalid(name, f"is {len(value)} characters long; the limit is {limit}")
    bad = unsafe_character(value)
    if bad:
        invalid(name, f"contains {bad[1]} at position {bad[0]}")
    return value


def check_text(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        invalid(name, f"is {len(value)} characters long; the limit is {limit}")


def check_key(name: str, key: str) -> None:
    """Param, metric and tag keys, as MLflow accepts them (they may become file names)."""
    if not key:
        invalid(name, "key must not be empty")
    if len(key) > MAX_KEY:
        invalid(name, f"key is {len(key)} characters long; the limit is {MAX_KEY}")
    if not _KEY.match(key):
        invalid(name, f"key {key!r} may only contain letters, digits, '_', '-', '.', ' ', ':' and '/'")
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith(("..", "/")):
        invalid(name, f"key {key!r} is not a clean relative path (it would resolve to {norm!r})")


def check_input_tags(tags: Mapping[str, str]) -> None:
    """A dataset input's tags, with MLflow's limits (mlflow/utils/validation.py, _validate_input_tag)."""
    if len(tags) > MAX_INPUT_TAGS:
        invalid("tags", f"{len(tags)} tags on one dataset input; the limit is {MAX_INPUT_TAGS}")
    for key, value in tags.items():
        check_name(f"tags[{key[:50]!r}]", key, MAX_INPUT_TAG_KEY)
        check_text(f"tags[{key!r}]", value, MAX_INPUT_TAG_VALUE)


def check_entries(name: str, entries: Mapping[str, str], value_limit: int) -> None:
    if len(entries) > MAX_ENTRIES_PER_COMMAND:
        invalid(name, f"{len(entries)} entries in one command; the limit is {MAX_ENTRIES_PER_COMMAND}")
    for key, value in entries.items():
        check_key(f"{name}[{key!r}]", key)
        check_text(f"{name}[{key!r}]", value, value_limit)


def check_int64(name: str, values: Sequence[int]) -> None:
    if values and (min(values) < -INT64 or max(values) >= INT64):
        invalid(name, "values must fit in a signed 64-bit integer")


def check_time(name: str, value: int) -> None:
    if not 0 <= value < INT64:
        invalid(name, f"{value} is not a time in milliseconds since the epoch")


def changed_entries(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The entries of `wanted` that `current` does not already hold with the same value."""
    return {k: v for k, v in wanted.items() if current.get(k) != v}


# ---------------------------------------------------------------- stream ids


def experiment_stream_id(experiment_id: str) -> str:
    return f"experiment-{experiment_id}"


def run_stream_id(run_id: str) -> str:
    return f"run-{run_id}"


def experiment_name_stream_id(name: str) -> str:
    """`experiment-name-<name>`; names the log cannot hold as a stream id (too long, not printable) use
    `experiment-name#sha256:<hex>` instead, a prefix no plain name can produce."""
    plain = f"experiment-name-{name}"
    if len(plain) <= MAX_STREAM_ID and plain.isprintable():
        return plain
    return f"experiment-name#sha256:{hashlib.sha256(name.encode()).hexdigest()}"
