"""One reference grammar for every versioned thing (models and artifacts alike), applied by the SDK,
the CLI and the server:

- `NAME@ALIAS` is always an alias (`churn@champion`, `ds@prod`; `@latest` is the newest version);
- `NAME/N` and `NAME:N` (also `vN`) are always a version;
- `NAME` and `NAME/latest` are the newest version.

Names cannot contain `@`, `:` or `/`, so the last of them splits a reference. Two older artifact
spellings still work, with a DeprecationWarning naming the new one: `ds@3` (a version after `@`) and
`ds:prod` (an alias after `:`). Aliases can never look like versions, so neither is ambiguous.
"""

from __future__ import annotations

import re
import warnings

from modelog.shared.errors import InvalidArgument

LATEST = "latest"
_VERSION = re.compile(r"^v?\d+\Z")


def _deprecated(text: str, better: str) -> None:
    warnings.warn(f"{text!r}: write {better!r} (the old artifact spelling)", DeprecationWarning, stacklevel=4)


def parse(
    text: str, field_name: str = "ref", *, what: str = "model", warn: bool = True
) -> tuple[str, int | None, str | None]:
    """(name, version, alias): version and alias both None for the newest version. `warn=False` for
    references already recorded (a server reading its log has no one to tell)."""
    cut = max(text.rfind("@"), text.rfind(":"), text.rfind("/"))
    if cut == -1:
        return text, None, None
    name, sep, spec = text[:cut], text[cut], text[cut + 1 :]
    if not name or not spec:
        why = f"{text!r}: a {what} reference is NAME, NAME/3 (a version number) or NAME@alias"
        raise InvalidArgument.field(field_name, why)
    if _VERSION.match(spec):
        version = int(spec.lstrip("v"))
        if version < 1:
            raise InvalidArgument.field(field_name, f"{text!r}: version numbers start at 1")
        if sep == "@" and warn:
            _deprecated(text, f"{name}:{version}")
        return name, version, None
    if spec == LATEST:
        return name, None, None
    if sep == "/":
        why = f"{text!r}: after '/' comes a version number ({name}/3) or 'latest'; an alias goes after '@'"
        raise InvalidArgument.field(field_name, why)
    if sep == ":" and warn:
        _deprecated(text, f"{name}@{spec}")
    return name, None, spec
