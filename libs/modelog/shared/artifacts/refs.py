"""How people name an artifact and one of its versions, checked the same way by the SDK and the server."""

from __future__ import annotations

import re
from typing import NamedTuple, NoReturn

from modelog.shared.errors import InvalidArgument

LATEST = "latest"
"""The alias that moves to each new version by itself."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}\Z")
_VERSIONISH = re.compile(r"^v?\d+\Z")


def _invalid(name: str, why: str) -> NoReturn:
    raise InvalidArgument.field(name, why)


def check_name(value: str, field_name: str = "name") -> str:
    if not _NAME.match(value):
        _invalid(
            field_name,
            f"{value!r} is not an artifact name: 1-128 of A-Z a-z 0-9 . _ -, starting alphanumeric",
        )
    return value


def check_alias(value: str, field_name: str = "alias") -> str:
    if value == LATEST:
        _invalid(field_name, "'latest' moves to each new version by itself and cannot be set or removed")
    if not _ALIAS.match(value) or _VERSIONISH.match(value):
        _invalid(
            field_name,
            f"{value!r} is not an alias: 1-64 of a-z 0-9 _ -, starting with a letter, not a version like v3",
        )
    return value


class Ref(NamedTuple):
    """A version as people write it (modelog.shared.refs): `ds`, `ds/3`, `ds:3`, `ds@prod`."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:v{self.version}"
        return f"{self.name}@{self.alias or LATEST}"


def parse_ref(text: str, field_name: str = "ref") -> Ref:
    """An artifact reference, by the grammar models use too (modelog.shared.refs)."""
    from modelog.shared.refs import parse

    name, version, alias = parse(text, field_name, what="artifact")
    check_name(name, field_name)
    return Ref(name, version=version, alias=None if alias is None else check_alias(alias, field_name))
