"""MLflow's search filter syntax, plus OR, NOT and parentheses, parsed into a small typed AST: the one
grammar of every search (runs, experiments, registered models, model versions, logged models).

    metrics.acc > 0.9 AND (params.lr = '0.01' OR tags.`mlflow.user` LIKE 'ana%') AND NOT status = 'FAILED'

A caller declares what its search accepts in a `Schema` (which entity prefixes, which attributes of
which kind); the grammar, the type rules and the error messages are the same for all. Precedence NOT >
AND > OR; keywords and entity prefixes are case-insensitive, keys and values are not. Strings are quoted
with ' or " (a quote is doubled inside: 'it''s'); keys with characters beyond letters, digits and
`_ . - / :` are quoted with `, " or '. Type rules follow MLflow: metrics and times compare to numbers,
everything else to strings. Every error points at the column of the mistake.

Each service compiles the AST to SQL over its own views (tracking/search.py, registry/search.py);
`evaluate.py` runs it over rows in memory where there is no table (the gateway's logged models).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Literal, NoReturn

from eventlog import FieldViolation, InvalidArgument

Entity = Literal["metric", "param", "tag", "attribute", "dataset"]
Op = Literal["=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"]
Value = float | int | str | tuple[str, ...] | None


@dataclass(frozen=True)
class Comparison:
    entity: Entity
    key: str
    op: Op
    value: Value = None


@dataclass(frozen=True)
class _Group:
    items: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.items) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two items")


class And(_Group):
    """Every item holds (a plain subclass: the dataclass's eq already tells And from Or)."""


class Or(_Group):
    """Some item holds."""


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderBy:
    entity: Entity
    key: str
    descending: bool = False


# ---------------------------------------------------------------- the vocabulary

PREFIXES: dict[Entity, str] = {
    "metric": "metrics",
    "param": "params",
    "tag": "tags",
    "attribute": "attributes",
    "dataset": "datasets",
}
_ENTITY_NAMES: dict[str, Entity] = {
    **{p: e for e, p in PREFIXES.items()},
    **{e: e for e in PREFIXES},
    "parameter": "param",
    "parameters": "param",
    "attr": "attribute",
    "run": "attribute",
}
Kind = Literal["number", "integer", "string", "choice"]
DATASET_FIELDS = ("name", "digest", "context")


@dataclass(frozen=True)
class Schema:
    """What one search accepts: the entities its columns may name and the kind of each attribute.

    `choices` lists the values a "choice" attribute takes (run statuses); `synonyms` are other names of
    an attribute (MLflow's `timestamp` for `creation_timestamp`), resolved by the parser; `nullable`
    attributes accept IS [NOT] NULL; `unordered` entities cannot order results.
    """

    what: str  # "runs", "registered models": named in errors
    item: str  # "run", "registered model"
    attributes: Mapping[str, Kind]
    entities: tuple[Entity, ...] = ("attribute", "tag")
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    synonyms: Mapping[str, str] = field(default_factory=dict)
    nullable: frozenset[str] = frozenset()
    unordered: tuple[Entity, ...] = ("dataset",)

    def kind(self, entity: Entity, key: str) -> Kind:
        if entity == "metric":
            return "number"
        if entity == "attribute":
            return self.attributes[key]
        return "string"

    def allowed_ops(self, entity: Entity, key: str) -> tuple[Op, ...]:
        """The operators a column accepts (MLflow's type rules; `key` matters for attributes only)."""
        if entity == "metric":
            return _NUMERIC_OPS + _NULL_OPS
        if entity in ("param", "tag"):
            return _STRING_OPS + _NULL_OPS
        if entity == "dataset":
            return _STRING_OPS
        ops = _NUMERIC_OPS if self.attributes[key] in ("integer", "number") else _STRING_OPS
        return ops + _NULL_OPS if key in self.nullable else ops


_NUMERIC_OPS: tuple[Op, ...] = ("=", "!=", "<", "<=", ">", ">=")
_STRING_OPS: tuple[Op, ...] = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
_NULL_OPS: tuple[Op, ...] = ("IS NULL", "IS NOT NULL")
_KEYWORDS = {"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE"}

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[\w.\-/:]+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATOR = re.compile(r"!=|<=|>=|=|<|>")
_OPERATORS: dict[str, Op] = {op: op for op in (*_NUMERIC_OPS, "LIKE", "ILIKE", "IN")}
_INT64 = 2**63
MAX_NESTING = 100  # parentheses and NOTs; keeps the recursive descent far from Python's stack limit


# ---------------------------------------------------------------- tokens


_TokenKind = Literal["ident", "word", "string", "number", "op", "(", ")", ",", "end"]
_PUNCTUATION: dict[str, _TokenKind] = {"(": "(", ")": ")", ",": ","}


@dataclass(frozen=True)
class _Token:
    kind: _TokenKind
    pos: int
    text: str  # as written
    value: str = ""  # a string's content, a keyword in upper case, an identifier's key
    prefix: str | None = None  # an identifier's entity prefix as written


class _Syntax:
    """Tokenizer and error reporting over one piece of text (a filter or an order-by clause)."""

    def __init__(self, text: str, field: str, schema: Schema) -> None:
        self.text = text
        self.field = field
        self.schema = schema
        self.tokens = self._tokenize()
        self.i = 0

    def fail(self, pos: int, what: str) -> NoReturn:
        col = pos + 1
        description = f"{what} at column {col}"
        shown = "".join(c if c.isprintable() else " " for c in self.text)
        start = max(0, min(pos - 50, len(shown) - 100))
        excerpt = ("..." if start else "") + shown[start : start + 100]
        excerpt += "..." if start + 100 < len(shown) else ""
        caret = " " * (pos - start + (3 if start else 0)) + "^"
        raise InvalidArgument(
            f"{self.field}: {description}\n  {excerpt}\n  {caret}",
            violations=[FieldViolation(self.field, description)],
            metadata={"column": str(col)},
        )

    def _quoted(self, pos: int) -> tuple[str, int]:
        quote = self.text[pos]
        out: list[str] = []
        i = pos + 1
        while True:
            end = self.text.find(quote, i)
            if end < 0:
                self.fail(pos, f"the quoted text starting here has no closing {quote}")
            out.append(self.text[i:end])
            if self.text.startswith(quote, end + 1):
                out.append(quote)
                i = end + 2
                continue
            return "".join(out), end + 1

    def _tokenize(self) -> list[_Token]:
        text, tokens, i = self.text, [], 0
        while True:
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                tokens.append(_Token("end", i, ""))
                return tokens
            c = text[i]
            if c in _PUNCTUATION:
                tokens.append(_Token(_PUNCTUATION[c], i, c))
                i += 1
            elif c in "'\"":
                value, end = self._quoted(i)
                tokens.append(_Token("string", i, text[i:end], value))
                i = end
            elif m := _NUMBER.match(text, i):
                if _WORD.match(text, m.end()) or text.startswith(".", m.end()):
                    self.fail(i, f"{text[i : m.end() + 1]!r} is not a number")
                tokens.append(_Token("number", i, m.group()))
                i = m.end()
            elif m := _OPERATOR.match(text, i):
                tokens.append(_Token("op", i, m.group()))
                i = m.end()
            elif m := _WORD.match(text, i):
                word, i = m.group(), m.end()
                if not text.startswith(".", i):
                    tokens.append(_Token("word", m.start(), word, word.upper()))
                    continue
                i += 1
                if i < len(text) and text[i] in "`\"'":
                    key, end = self._quoted(i)
                elif k := _BARE_KEY.match(text, i):
                    key, end = k.group(), k.end()
                else:
                    self.fail(i, f"expected a key after {word + '.'!r}")
                if not key:
                    self.fail(i, "a key must not be empty")
                tokens.append(_Token("ident", m.start(), text[m.start() : end], key, word))
                i = end
            else:
                self.fail(i, f"unexpected character {c!r}")

    # -------------------------------------------------------- cursor

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def at_keyword(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.value in words

    def found(self, tok: _Token) -> str:
        if tok.kind == "end":
            return "the end of the text"
        return repr(tok.text if len(tok.text) <= 40 else tok.text[:37] + "...")

    def identifier(self) -> tuple[Entity, str, _Token]:
        """An entity-qualified key, or a bare attribute name."""
        schema = self.schema
        tok = self.advance()
        if tok.kind == "word" and tok.value not in _KEYWORDS:
            entity: Entity = "attribute"
            key = tok.text
        elif tok.kind == "ident" and tok.prefix is not None:
            found = _ENTITY_NAMES.get(tok.prefix.lower())
            if found is None or found not in schema.entities:
                prefixes = ", ".join(PREFIXES[e] + "." for e in schema.entities)
                self.fail(tok.pos, f"unknown prefix {tok.prefix!r}; {schema.what} take {prefixes}")
            entity, key = found, tok.value
        else:
            example = "metrics.acc" if "metric" in schema.entities else "name or tags.team"
            self.fail(tok.pos, f"expected a column such as {example}, found {self.found(tok)}")
        if entity == "attribute":
            key = schema.synonyms.get(key, key)
            if key not in schema.attributes:
                others = ", ".join(PREFIXES[e] + "." for e in schema.entities if e != "attribute")
                self.fail(
                    tok.pos,
                    f"unknown attribute {key!r}; attributes of {schema.what} are "
                    f"{', '.join(schema.attributes)} (use {others} for other keys)",
                )
        if entity == "dataset" and key not in DATASET_FIELDS:
            self.fail(tok.pos, f"unknown dataset field {key!r}; use {', '.join(DATASET_FIELDS)}")
        return entity, key, tok


# ---------------------------------------------------------------- filters


class _FilterParser(_Syntax):
    def __init__(self, text: str, schema: Schema) -> None:
        super().__init__(text, "filter", schema)
        self.depth = 0

    def nest(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail(tok.pos, f"the filter nests deeper than {MAX_NESTING} levels")

    def expression(self) -> Expr:
        items = [self.conjunction()]
        while self.at_keyword("OR"):
            self.advance()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Expr:
        items = [self.negation()]
        while self.at_keyword("AND"):
            self.advance()
            items.append(self.negation())
        return items[0] if len(items) == 1 else And(tuple(items))

    def negation(self) -> Expr:
        if self.at_keyword("NOT"):
            self.nest(self.advance())
            inner = self.negation()
            self.depth -= 1
            return Not(inner)
        return self.primary()

    def primary(self) -> Expr:
        tok = self.peek()
        if tok.kind == "(":
            self.nest(self.advance())
            inner = self.expression()
            self.depth -= 1
            end = self.peek()
            if end.kind == "end":
                self.fail(tok.pos, "this '(' is never closed")
            if end.kind != ")":
                self.fail(end.pos, f"expected AND, OR or ')', found {self.found(end)}")
            self.advance()
            return inner
        if tok.kind == "ident" or (tok.kind == "word" and tok.value not in _KEYWORDS):
            return self.comparison()
        before = self.tokens[self.i - 1].text if self.i else None
        after = f" after {before!r}" if before else ""
        self.fail(tok.pos, f"expected a comparison{after}, found {self.found(tok)}")

    def operator(self, column: str) -> tuple[Op, _Token]:
        tok = self.advance()
        if tok.kind == "op":
            return _OPERATORS[tok.text], tok
        if tok.kind == "word" and tok.value in ("LIKE", "ILIKE", "IN"):
            return _OPERATORS[tok.value], tok
        if tok.kind == "word" and tok.value == "NOT":
            if not self.at_keyword("IN"):
                self.fail(self.peek().pos, f"expected IN after NOT, found {self.found(self.peek())}")
            self.advance()
            return "NOT IN", tok
        if tok.kind == "word" and tok.value == "IS":
            negated = self.at_keyword("NOT")
            if negated:
                self.advance()
            if not self.at_keyword("NULL"):
                self.fail(self.peek().pos, f"expected NULL after {tok.text}, found {self.found(self.peek())}")
            self.advance()
            return ("IS NOT NULL" if negated else "IS NULL"), tok
        self.fail(
            tok.pos,
            f"expected an operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL) "
            f"after {column!r}, found {self.found(tok)}",
        )

    def comparison(self) -> Comparison:
        entity, key, ident = self.identifier()
        op, op_tok = self.operator(ident.text)
        allowed = self.schema.allowed_ops(entity, key)
        if op not in allowed:
            self.fail(op_tok.pos, f"{ident.text} cannot be compared with {op}; use {', '.join(allowed)}")
        kind = self.schema.kind(entity, key)
        if op in _NULL_OPS:
            return Comparison(entity, key, op)
        if op in ("IN", "NOT IN"):
            return Comparison(entity, key, op, self.in_list(kind, key, ident.text, op_tok))
        return Comparison(entity, key, op, self.value(kind, key, ident.text, op_tok, op))

    def in_list(self, kind: Kind, key: str, column: str, op_tok: _Token) -> tuple[str, ...]:
        if self.peek().kind != "(":
            self.fail(self.peek().pos, f"expected '(' after {op_tok.text}, found {self.found(self.peek())}")
        self.advance()
        values = [self.value(kind, key, column, self.tokens[self.i - 1], "IN")]
        while self.peek().kind == ",":
            values.append(self.value(kind, key, column, self.advance(), "IN"))
        if self.peek().kind != ")":
            self.fail(self.peek().pos, f"expected ',' or ')' in the IN list, found {self.found(self.peek())}")
        self.advance()
        return tuple(str(v) for v in values)

    def value(self, kind: Kind, key: str, column: str, after: _Token, op: Op) -> float | int | str:
        tok = self.advance()
        if tok.kind not in ("string", "number"):
            self.fail(tok.pos, f"expected a value after {after.text!r}, found {self.found(tok)}")
        if kind in ("number", "integer"):
            if tok.kind != "number":
                self.fail(tok.pos, f"{column} compares to numbers, not to the string {tok.text}")
            return self.number(tok, kind)
        if tok.kind != "string":
            self.fail(tok.pos, f"{column} compares to strings; quote the value: '{tok.text}'")
        choices = self.schema.choices.get(key, ())
        if kind == "choice" and op not in ("LIKE", "ILIKE") and tok.value not in choices:
            self.fail(
                tok.pos, f"{tok.value!r} is not a {self.schema.item} {key}; use one of {', '.join(choices)}"
            )
        return tok.value

    def number(self, tok: _Token, kind: Kind) -> float | int:
        try:
            exact = Decimal(tok.text)
        except InvalidOperation:  # pragma: no cover - the tokenizer only passes well-formed numbers
            self.fail(tok.pos, f"{tok.text!r} is not a number")
        if kind == "integer":
            if exact != exact.to_integral_value() or not -_INT64 <= exact < _INT64:
                self.fail(tok.pos, f"{tok.text} is not a whole number of milliseconds")
            return int(exact)
        value = float(tok.text)
        if not math.isfinite(value):
            self.fail(tok.pos, f"{tok.text} is too large for a 64-bit float")
        return value


def parse_filter(text: str, schema: Schema) -> Expr | None:
    """The AST of a filter; None when the filter is blank (no filtering). Raises InvalidArgument."""
    parser = _FilterParser(text, schema)
    if parser.peek().kind == "end":
        return None
    expr = parser.expression()
    tok = parser.peek()
    if tok.kind != "end":
        prev = parser.tokens[parser.i - 1].text
        parser.fail(
            tok.pos, f"expected AND, OR or the end of the filter after {prev!r}, found {parser.found(tok)}"
        )
    return expr


def parse_order_by(text: str, schema: Schema, field: str = "order_by") -> OrderBy:
    """`metrics.acc DESC`, `attributes.start_time`, `name ASC` (datasets cannot order runs)."""
    parser = _Syntax(text, field, schema)
    entity, key, tok = parser.identifier()
    if entity in schema.unordered:
        parser.fail(tok.pos, f"{schema.what} cannot be ordered by a {entity} field")
    descending = parser.at_keyword("DESC")
    if descending or parser.at_keyword("ASC"):
        parser.advance()
    end = parser.peek()
    if end.kind != "end":
        parser.fail(end.pos, f"expected ASC, DESC or the end of the clause, found {parser.found(end)}")
    return OrderBy(entity, key, descending)


# ---------------------------------------------------------------- formatting


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else "`" + key.replace("`", "``") + "`"


def _literal(value: float | int | str) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} has no filter syntax")
    return repr(value)


def _comparison(c: Comparison) -> str:
    column = f"{PREFIXES[c.entity]}.{_key(c.key)}"
    if c.value is None:
        return f"{column} {c.op}"
    if isinstance(c.value, tuple):
        return f"{column} {c.op} ({', '.join(_literal(v) for v in c.value)})"
    return f"{column} {c.op} {_literal(c.value)}"


def _format(expr: Expr, within: type[And] | type[Or] | type[Not] | None) -> str:
    if isinstance(expr, Comparison):
        return _comparison(expr)
    if isinstance(expr, Not):
        return "NOT " + _format(expr.item, Not)
    joiner = " AND " if isinstance(expr, And) else " OR "
    text = joiner.join(_format(item, type(expr)) for item in expr.items)
    # AND binds tighter than OR, so only an AND inside an OR goes without parentheses.
    return text if within is None or (within is Or and isinstance(expr, And)) else f"({text})"


def format_filter(expr: Expr) -> str:
    """Canonical filter text: parse_filter(format_filter(e)) == e for every valid AST."""
    return _format(expr, None)


def format_order_by(order: OrderBy) -> str:
    return f"{PREFIXES[order.entity]}.{_key(order.key)} {'DESC' if order.descending else 'ASC'}"
