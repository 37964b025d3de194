"""Manifests: a directory as a sorted map path -> (digest, size, mode), content-addressed by the SHA-256
of its canonical JSON.

Pure and shared by the server (validating commits) and the SDK (building manifests, and refusing a
download whose manifest would write outside the target directory). A path is accepted only in its one
normal form, so a manifest means the same files on Linux, macOS and Windows (and its percent-decodings
must be normal too, so it means no other files where it is read as a URL).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NoReturn
from urllib.parse import unquote

from modelog.shared.errors import InvalidArgument
from modelog.shared.hashchain import canonical_json
from modelog.shared.inputs import unsafe_character

FORMAT = "modelog.manifest.v1"
MODE_FILE = 0o644
MODE_EXEC = 0o755
MAX_PATH_BYTES = 4096
MAX_SEGMENT_BYTES = 255
MAX_ENTRIES = 500_000
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_DIGEST = re.compile(r"^[0-9a-f]{64}\Z")
_DRIVE = re.compile(r"^[A-Za-z]:")
_DECODINGS = ("once", "twice", "three times")
"""Percent-decodings of a path checked; one still encoded after that many is refused."""


def _refuse(field_name: str, path: str, why: str) -> NoReturn:
    raise InvalidArgument.field(field_name, f"{path!r} {why}")


def path_problem(path: str) -> str | None:
    """Why `path` is not a normal relative manifest path, or None when it is."""
    why = _plain_problem(path)
    if why is None and "%" in path:
        why = _decoded_problem(path)
    return why


def _plain_problem(path: str) -> str | None:
    if not path:
        return "is empty"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if size > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    if "\x00" in path:
        return "contains NUL"
    bad = unsafe_character(path)
    if bad:
        return f"contains {bad[1]} at position {bad[0]}"
    if "\\" in path:
        return (
            "contains a backslash: separate directories with '/' (Windows reads a backslash as a "
            "separator, so the path would name different files on different systems)"
        )
    if path.startswith("/"):
        return "is absolute: paths are relative to the artifact's root"
    if _DRIVE.match(path):
        return "starts with a drive letter (an absolute path on Windows)"
    for segment in path.split("/"):
        if segment == "":
            return "has an empty segment ('//', or a '/' at the end)"
        if segment == ".":
            return "has a '.' segment: write the path without it"
        if segment == "..":
            return "has a '..' segment, which would leave the artifact's root"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"has a segment longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def _decoded_problem(path: str) -> str | None:
    """A path becomes a URL's path wherever files are served over HTTP, which decodes it (and a
    careless client or proxy decodes twice), so each percent-decoding of it must be as normal as the
    path itself: '%2e%2e%2f' is a harmless name here and '../' there. Paths that merely hold a '%'
    ('100%.csv', 'a%20b.txt') are fine."""
    text = path
    for times in _DECODINGS:
        decoded = unquote(text)
        if decoded == text:
            return None
        why = _plain_problem(decoded)
        if why:
            return f"reads as {decoded!r} when percent-decoded {times} (as a URL is), and that {why}"
        text = decoded
    return f"is still percent-encoded after {len(_DECODINGS)} decodings: write the name plainly"


def check_path(path: str, field_name: str = "path") -> str:
    why = path_problem(path)
    if why:
        _refuse(field_name, path, why)
    return path


def check_digest(digest: str, field_name: str = "digest") -> str:
    if not _DIGEST.match(digest):
        raise InvalidArgument.field(field_name, f"{digest!r} is not a SHA-256 digest (64 lower-case hex)")
    return digest


def normal_mode(mode: int) -> int:
    """Only the executable bit survives, as in git: umask differences must not change a manifest."""
    return MODE_EXEC if mode & 0o111 else MODE_FILE


def fold(path: str) -> str:
    """The key under which case-insensitive, normalising file systems (macOS, Windows) see a path."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", path).casefold())


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    digest: str
    size: int
    mode: int = MODE_FILE


@dataclass(frozen=True)
class Manifest:
    """Entries sorted by path (code point order, which is also UTF-8 byte order)."""

    entries: tuple[Entry, ...]
    _by_path: dict[str, Entry] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, entries: Iterable[Entry], field_name: str = "entries") -> Manifest:
        """Validate every path, digest and size, and refuse paths that would collide on disk."""
        items = list(entries)
        if len(items) > MAX_ENTRIES:
            raise InvalidArgument.field(field_name, f"{len(items)} entries; the limit is {MAX_ENTRIES}")
        for i, e in enumerate(items):
            check_path(e.path, f"{field_name}[{i}].path")
            check_digest(e.digest, f"{field_name}[{i}].digest")
            if e.size < 0:
                raise InvalidArgument.field(f"{field_name}[{i}].size", f"{e.path!r} has a negative size")
        items.sort(key=lambda e: e.path)
        _check_collisions(items, field_name)
        return cls(tuple(Entry(e.path, e.digest, e.size, normal_mode(e.mode)) for e in items))

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Read a stored manifest. Only its shape is checked: a reader applies path rules itself."""
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
            rows = [Entry(str(p), str(d), int(s), int(m)) for p, d, s, m in doc["entries"]]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"not a manifest: {exc}") from None
        return cls(tuple(rows))

    def canonical(self) -> bytes:
        rows = [[e.path, e.digest, e.size, e.mode] for e in self.entries]
        return canonical_json({"entries": rows, "format": FORMAT}).encode("utf-8")

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    @property
    def file_count(self) -> int:
        return len(self.entries)

    @cached_property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)

    def get(self, path: str) -> Entry | None:
        if not self._by_path and self.entries:
            self._by_path.update((e.path, e) for e in self.entries)
        return self._by_path.get(path)

    def blob_digests(self) -> set[str]:
        return {e.digest for e in self.entries}


def _check_collisions(items: Sequence[Entry], field_name: str) -> None:
    """Two paths one file system could not hold apart: duplicates, case or normalisation variants,
    and a file that is also another path's directory."""
    files: dict[str, str] = {}
    for i, e in enumerate(items):
        key = fold(e.path)
        other = files.get(key)
        if other is not None:
            why = (
                "appears twice"
                if other == e.path
                else f"and {other!r} differ only in case or Unicode normalisation: they would be one "
                "file on macOS and Windows"
            )
            _refuse(f"{field_name}[{i}].path", e.path, why)
        files[key] = e.path
    for i, e in enumerate(items):
        cut = e.path.find("/")
        while cut != -1:
            parent = files.get(fold(e.path[:cut]))
            if parent is not None:
                _refuse(
                    f"{field_name}[{i}].path", e.path, f"needs {parent!r} to be a directory, but it is a file"
                )
            cut = e.path.find("/", cut + 1)


@dataclass(frozen=True)
class Change:
    path: str
    old: Entry | None
    new: Entry | None


@dataclass(frozen=True)
class Diff:
    added: list[Change]
    removed: list[Change]
    modified: list[Change]
    unchanged: int


def diff(a: Manifest, b: Manifest) -> Diff:
    """Paths added, removed and modified (content or mode) from `a` to `b`, each list sorted by path."""
    added: list[Change] = []
    removed: list[Change] = []
    modified: list[Change] = []
    unchanged = 0
    old = {e.path: e for e in a.entries}
    for e in b.entries:
        before = old.pop(e.path, None)
        if before is None:
            added.append(Change(e.path, None, e))
        elif before.digest != e.digest or before.mode != e.mode:
            modified.append(Change(e.path, before, e))
        else:
            unchanged += 1
    removed = [Change(p, e, None) for p, e in sorted(old.items())]
    return Diff(added, removed, modified, unchanged)
