"""Which artifact paths MLflow's proxied-artifacts API may name, and where a named path leads.

`safe_path` is the one check of a path a request names, run before anything else (before
authentication, before a byte is read): every decoding of it must be a plain relative path. The stock
client names files `<experiment_id>/<run_id>/artifacts/<path>` for a run and
`<experiment_id>/models/<model_id>/artifacts/<path>` for an MLflow 3 logged model (`where`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from starlette.requests import Request

from eventlog.errors import InvalidArgument

MODEL_FILES = "artifacts/"
"""Where a logged model's files sit in its manifest (its metadata is beside them, see models.py)."""
DECODINGS = 3

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,100}\Z")
_ENCODED_SEPARATOR = re.compile(r"%(?:2f|5c)", re.I)
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _path_form_problem(form: str, *, dots: bool = False) -> str | None:
    """Why `form` is not a plain relative path; `dots`: a "." segment is a problem too."""
    if not form:
        return "is empty"
    if _CONTROL.search(form):
        return "contains NUL or a control character"
    if "\\" in form:
        return "contains a backslash"
    if form.startswith("/"):
        return "is absolute"
    segments = form.split("/")
    if "" in segments:
        return "has an empty segment ('//' or a trailing '/')"
    if ".." in segments:
        return "has a '..' segment"
    if dots and "." in segments:
        return "has a '.' segment"
    if any(_DRIVE.match(s) for s in segments):
        return "has a segment starting with a drive letter (absolute on Windows)"
    return None


def safe_path(text: str, *, raw: str | None = None, field: str = "path") -> str:
    """`text` as a plain relative path, its "." segments dropped ("" for "." itself), else
    INVALID_ARGUMENT (400 INVALID_PARAMETER_VALUE).

    `text` is the path as the server decoded it once; `raw`, for a path taken from the URL's path, is
    what came on the wire. What is refused, in every form a client, proxy or file system might read:
    `..` and empty segments, backslashes, NUL and control characters, absolute paths and drive
    letters, separators sent percent-encoded (`%2f`, `%5c`: the router would take them for real ones),
    and any of these -- or a "." segment -- appearing once the path is percent-decoded again (`%2e%2e`,
    `%252e%252e`), since a careless client or proxy decodes twice. A plain "." segment (`.`, `./dir`,
    `dir/.`) means where it stands, as in MLflow (`validate_path_is_safe`), and the stock client sends
    one for "the whole root". Names that merely hold a `%` (`100%.csv`) pass.
    """

    def refuse(why: str) -> InvalidArgument:
        # MLflow's words first ("Invalid path", validate_path_is_safe), then what is wrong with it.
        told = f"Invalid path: artifact path {text!r} {why}; nothing was read or written"
        return InvalidArgument(told, violations=[(field, told)])

    if raw is not None:
        if _ENCODED_SEPARATOR.search(raw):
            raise refuse("holds a percent-encoded '/' or '\\'")
        if unquote(raw) != text:
            raise refuse("does not decode to the path the server routed")
    plain = "/".join(s for s in text.split("/") if s != ".")
    if not plain and text:  # "." (or "./."): the root
        return ""
    form = plain
    for times in range(DECODINGS + 1):
        why = _path_form_problem(form, dots=times > 0)
        if why:
            raise refuse(why if times == 0 else f"{why} once percent-decoded {times} more time(s)")
        decoded = unquote(form)
        if decoded == form:
            return plain
        form = decoded
    raise refuse(f"is still percent-encoded after {DECODINGS} decodings")


def raw_tail(request: Request, prefix: str) -> str:
    raw = request.scope.get("raw_path")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else quote(request.url.path)
    if not text.startswith(prefix):
        raise InvalidArgument.field("path", f"the request path does not start with {prefix!r} as sent")
    return text[len(prefix) :]


@dataclass(frozen=True)
class Where:
    """A path the client names, as MLflow lays it out."""

    experiment_id: str
    run_id: str
    model_id: str
    rel: str
    """Below the run's or model's artifact root; "" for the root itself."""

    @property
    def name(self) -> str:
        return f"model-{self.model_id}" if self.model_id else f"run-{self.run_id}"

    @property
    def key(self) -> str:
        """The path in the artifact's manifest ("" or MODEL_FILES[:-1] for the root)."""
        root = MODEL_FILES if self.model_id else ""
        return (root + self.rel).rstrip("/")

    def describe(self) -> str:
        return f"logged model {self.model_id}" if self.model_id else f"run {self.run_id}"


def where(path: str) -> Where | None:
    """Where `path` leads, or None when it is not under a run's or logged model's artifacts."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        eid, model_id, run_id, rel = parts[0], parts[2], "", parts[4:]
        ident = model_id
    elif len(parts) >= 3 and parts[2] == "artifacts":
        eid, run_id, model_id, rel = parts[0], parts[1], "", parts[3:]
        ident = run_id
    else:
        return None
    if not _ID.match(eid) or not _ID.match(ident):
        return None
    return Where(eid, run_id, model_id, "/".join(rel))
