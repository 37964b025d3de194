"""Offset paging with a token bound to one search, for the one MLflow search the gateway answers from
rows it gathered itself (logged models, models.py). Filters are the shared grammar's
(modelog_services.query); every other search pages in its own service."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from eventlog.errors import InvalidArgument

_PROMPT_CLAUSE = re.compile(
    r"(?s)(?P<user>.+?)\s+AND\s+(?P<prompt>tags?\.`mlflow\.prompt\.is_prompt`\s*!?=\s*'true')"
)


def client_filter(text: str) -> str:
    """The stock client appends `AND tag.`mlflow.prompt.is_prompt` != 'true'` to a registry filter;
    MLflow has no OR, but ours binds looser than AND, so the user's part is grouped first: without it
    `a OR b` would hide prompts from `b` only."""
    m = _PROMPT_CLAUSE.fullmatch(text.strip())
    return f"({m['user']}) AND {m['prompt']}" if m else text


def page(items: Sequence[Any], size: int, token: str, scope: Sequence[Any]) -> tuple[Sequence[Any], str]:
    """The page of `items` the token points at, and the next page's token ('' on the last)."""
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
