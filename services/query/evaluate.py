"""The filter AST evaluated over rows in memory, for the one search with no table of its own: MLflow's
logged models, which live as artifact metadata documents (the gateway reads them one by one). Every
search with a table compiles the AST to SQL instead (tracking/search.py, registry/search.py).

MLflow's rule for missing tags, the same in sql.py: a row without the tag fails every comparison but
IS NULL (`tags.k != 'v'` finds rows tagged k with another value, as MLflow's join on the tag table
does), except the tags of `MISSING_TAG_READS`, read as their default there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .filter import And, Comparison, Expr, Not

MISSING_TAG_READS: Mapping[str, str] = {"mlflow.prompt.is_prompt": "false"}
"""Tags a row without them is read as having, with this value. A model never tagged as a prompt is not
one: the stock client sends ``tags.`mlflow.prompt.is_prompt` != 'true'`` with every model search, and
MLflow answers it with every model (its stores special-case this key)."""


def like(pattern: str, value: str, fold: bool) -> bool:
    """SQL LIKE: % any run of characters, _ one character; ILIKE folds case."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S | (re.I if fold else 0)) is not None


def _holds(c: Comparison, value: Any) -> bool:
    if c.op == "IS NULL":
        return value is None
    if c.op == "IS NOT NULL":
        return value is not None
    if value is None:
        return False
    if c.op in ("LIKE", "ILIKE"):
        return like(str(c.value), str(value), c.op == "ILIKE")
    if isinstance(c.value, tuple):
        return (str(value) in c.value) == (c.op == "IN")
    target: Any = c.value
    checks = {
        "=": lambda: value == target,
        "!=": lambda: value != target,
        "<": lambda: value < target,
        "<=": lambda: value <= target,
        ">": lambda: value > target,
        ">=": lambda: value >= target,
    }
    return bool(checks[c.op]())


def matches(expr: Expr | None, attributes: Mapping[str, Any], tags: Mapping[str, str]) -> bool:
    """Whether a row (its attributes by name, its tags) passes the filter; None passes everything."""
    if expr is None:
        return True
    if isinstance(expr, Comparison):
        if expr.entity == "attribute":
            return _holds(expr, attributes.get(expr.key))
        value = tags.get(expr.key)
        if value is None and expr.op not in ("IS NULL", "IS NOT NULL"):
            value = MISSING_TAG_READS.get(expr.key)
        return _holds(expr, value)
    if isinstance(expr, Not):
        return not matches(expr.item, attributes, tags)
    if isinstance(expr, And):
        return all(matches(item, attributes, tags) for item in expr.items)
    return any(matches(item, attributes, tags) for item in expr.items)
