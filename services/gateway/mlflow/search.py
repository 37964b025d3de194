"""MLflow's search grammar for the registry and logged models (comparisons joined by AND on
attributes and tags; =, !=, LIKE, ILIKE, IN, NOT IN, <, >), evaluated on what our search returned for
the clauses it cannot express, and offset paging with a token bound to one search."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventlog.errors import InvalidArgument

_TOKEN = re.compile(
    r"""\s*(?:(?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    |(?P<number>[+-]?\d+(?:\.\d*)?)
    |(?P<op>!=|<>|<=|>=|=|<|>)
    |(?P<punct>[(),])
    |(?P<ident>[A-Za-z_]\w*\.(?:`[^`]*`|"[^"]*"|'[^']*'|[\w.\-/:]+)|[A-Za-z_]\w*))""",
    re.X,
)
_PREFIXES = {
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
}


@dataclass(frozen=True)
class Clause:
    entity: str  # "attribute" or "tag"
    key: str
    op: str
    value: Any


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if not text[pos:].strip():
                break
            raise InvalidArgument.field("filter", f"unexpected text at column {pos + 1}: {text[pos:][:30]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] in "'\"`" and text[-1] == text[0]:
        return text[1:-1].replace(text[0] * 2, text[0])
    return text


def parse_filter(text: str, attributes: Mapping[str, str]) -> list[Clause]:
    """`name = 'x' AND tags.k LIKE 'a%'`: comparisons joined by AND (MLflow's registry grammar)."""
    tokens = _tokens(text)
    clauses: list[Clause] = []
    i = 0

    def take() -> tuple[str, str]:
        nonlocal i
        if i >= len(tokens):
            raise InvalidArgument.field("filter", f"{text!r} ends where a comparison continues")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        kind, ident = take()
        if kind != "ident":
            raise InvalidArgument.field(
                "filter", f"expected a column such as name or tags.k, found {ident!r}"
            )
        prefix, dot, key = ident.partition(".")
        if dot:
            entity = _PREFIXES.get(prefix.lower())
            if entity is None:
                raise InvalidArgument.field("filter", f"unknown prefix {prefix!r}; use tags. or attributes.")
            key = _unquote(key)
        else:
            entity, key = "attribute", ident
        if entity == "attribute" and key not in attributes:
            raise InvalidArgument.field(
                "filter", f"unknown attribute {key!r}; use {', '.join(attributes)} or tags.<key>"
            )
        kind, op = take()
        op = op.upper()
        if op == "NOT":
            if take()[1].upper() != "IN":
                raise InvalidArgument.field("filter", "expected IN after NOT")
            op = "NOT IN"
        elif op == "<>":
            op = "!="
        if kind not in ("op", "ident") or op not in (
            "=",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "LIKE",
            "ILIKE",
            "IN",
            "NOT IN",
        ):
            raise InvalidArgument.field(
                "filter", f"expected a comparison operator after {ident!r}, found {op!r}"
            )
        numeric = entity == "attribute" and attributes[key] == "number"
        if numeric != (op in ("<", "<=", ">", ">=")) and op not in ("=", "!="):
            raise InvalidArgument.field("filter", f"{ident} cannot be compared with {op}")
        if op in ("IN", "NOT IN"):
            if take() != ("punct", "("):
                raise InvalidArgument.field("filter", f"expected '(' after {op}")
            values: list[str] = []
            while True:
                kind, item = take()
                if kind != "string":
                    raise InvalidArgument.field("filter", f"{op} lists quoted strings, found {item!r}")
                values.append(_unquote(item))
                sep = take()
                if sep == ("punct", ")"):
                    break
                if sep != ("punct", ","):
                    raise InvalidArgument.field("filter", f"expected ',' or ')' in the {op} list")
            clauses.append(Clause(entity, key, op, tuple(values)))
        else:
            kind, raw = take()
            if numeric and kind != "number":
                raise InvalidArgument.field("filter", f"{ident} compares to numbers, not {raw}")
            if not numeric and kind != "string":
                raise InvalidArgument.field(
                    "filter", f"{ident} compares to strings; quote the value: '{raw}'"
                )
            clauses.append(Clause(entity, key, op, float(raw) if numeric else _unquote(raw)))
        if i < len(tokens) and take()[1].upper() != "AND":
            raise InvalidArgument.field("filter", "comparisons are joined by AND (MLflow's registry filters)")
    return clauses


def _like(pattern: str, value: str, fold: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S | (re.I if fold else 0)) is not None


def _holds(c: Clause, value: Any) -> bool:
    if value is None:  # a tag the entity does not carry: only "not equal" holds, as in MLflow
        return c.op in ("!=", "NOT IN")
    if c.op == "=":
        return bool(value == c.value)
    if c.op == "!=":
        return bool(value != c.value)
    if c.op in ("LIKE", "ILIKE"):
        return _like(str(c.value), str(value), c.op == "ILIKE")
    if c.op == "IN":
        return value in c.value
    if c.op == "NOT IN":
        return value not in c.value
    return bool(
        {"<": value < c.value, "<=": value <= c.value, ">": value > c.value, ">=": value >= c.value}[c.op]
    )


def matches(clauses: Sequence[Clause], attributes: Mapping[str, Any], tags: Mapping[str, str]) -> bool:
    return all(
        _holds(c, attributes.get(c.key) if c.entity == "attribute" else tags.get(c.key)) for c in clauses
    )


def equal(clauses: Sequence[Clause], entity: str, key: str) -> str | None:
    return next((str(c.value) for c in clauses if (c.entity, c.key, c.op) == (entity, key, "=")), None)


def parse_order(items: Sequence[Any], keys: Mapping[str, str]) -> list[tuple[str, bool]]:
    """["name ASC", "last_updated_timestamp DESC"] as (attribute, descending) pairs."""
    out: list[tuple[str, bool]] = []
    for item in items:
        words = str(item).split()
        key = words[0].removeprefix("attribute.") if words else ""
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if key not in keys or len(words) > 2 or direction not in ("ASC", "DESC"):
            raise InvalidArgument.field(
                "order_by", f"{item!r} is not '<key> [ASC|DESC]' with a key of {', '.join(keys)}"
            )
        out.append((keys[key], direction == "DESC"))
    return out


def sort(
    items: list[Any], order: Sequence[tuple[str, bool]], attributes: Callable[[Any], Mapping[str, Any]]
) -> None:
    for key, descending in reversed(order):
        items.sort(key=lambda x: attributes(x)[key], reverse=descending)


def page(items: Sequence[Any], size: int, token: str, scope: Sequence[Any]) -> tuple[Sequence[Any], str]:
    fingerprint = hashlib.sha256(json.dumps(list(scope), default=str).encode()).hexdigest()[:16]
    offset = 0
    if token:
        try:
            got = json.loads(base64.urlsafe_b64decode(token.encode()))
            if got["f"] != fingerprint or not isinstance(got["o"], int) or got["o"] < 0:
                raise ValueError
            offset = got["o"]
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument.field("page_token", "not a page token of this search") from None
    end = offset + size
    nxt = base64.urlsafe_b64encode(json.dumps({"o": end, "f": fingerprint}).encode()).decode()
    return items[offset:end], nxt if end < len(items) else ""
