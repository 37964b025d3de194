"""Manifest rules: one normal form per path, nothing that escapes the root or collides on disk, a
canonical encoding whose digest does not depend on input order."""

from __future__ import annotations

import hashlib
import posixpath
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventlog import InvalidArgument
from modelog.shared.artifacts.manifest import (
    MODE_EXEC,
    MODE_FILE,
    Entry,
    Manifest,
    check_path,
    diff,
    fold,
    path_problem,
)

D = "a" * 64


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/abs", "absolute"),
        ("../up", "'..'"),
        ("a/../../up", "'..'"),
        ("a/..", "'..'"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("./a", "'.' segment"),
        ("a/./b", "'.' segment"),
        ("a\x00b", "NUL"),
        ("a\tb", "control character U+0009"),
        ("a\\b", "backslash"),
        ("..\\up", "backslash"),
        ("C:/x", "drive letter"),
        ("c:x", "drive letter"),
        ("x" * 256, "segment longer"),
        ("a/" * 2100 + "b", "longer than 4096"),
        ("\udcff", "UTF-8"),
    ],
)
def test_unsafe_paths_are_refused_naming_path_and_reason(path: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_path(path, "entries[0].path")
    assert why in info.value.message and info.value.violations[0].field == "entries[0].path"
    assert repr(path) in info.value.message


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_an_accepted_path_stays_inside_the_root(path: str) -> None:
    if path_problem(path) is None:
        joined = posixpath.normpath(posixpath.join("/root", path))
        assert joined.startswith("/root/") and joined == "/root/" + path
        assert "\\" not in path and "\x00" not in path


_ENCODED = st.lists(
    st.sampled_from(["%2e", "%2E", "%2f", "%2F", "%5c", "%25", "%00", "%0a", "2e", "2f", ".", "/", "a", "%"]),
    max_size=12,
).map("".join)


@given(_ENCODED)
def test_an_accepted_path_stays_inside_the_root_however_often_a_url_decodes_it(path: str) -> None:
    if path_problem(path) is None:
        text = path
        for _ in range(3):
            text = unquote(text)
            joined = posixpath.normpath(posixpath.join("/root", text))
            assert joined.startswith("/root/") and joined == "/root/" + text, (path, text)
            assert "\\" not in text and "\x00" not in text


def entries(*paths: str) -> list[Entry]:
    return [Entry(p, D, 1) for p in paths]


@pytest.mark.parametrize(
    ("paths", "why"),
    [
        (["a.csv", "a.csv"], "twice"),
        (["A.csv", "a.csv"], "differ only in case"),
        (["STRASSE", "stra\u00dfe"], "differ only in case"),
        (["\u00e9", "e\u0301"], "Unicode normalisation"),
        (["x", "x/y"], "is a file"),
        (["X", "x/y/z"], "is a file"),
        (["x/y", "x/y/z"], "is a file"),
    ],
)
def test_paths_one_file_system_could_not_hold_apart_are_refused(paths: list[str], why: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        Manifest.build(entries(*paths))
    assert why in info.value.message


def test_the_digest_is_of_canonical_sorted_json_whatever_the_input_order() -> None:
    a = Manifest.build([Entry("b/x", D, 3, 0o100664), Entry("a", "b" * 64, 0, 0o100775)])
    b = Manifest.build([Entry("a", "b" * 64, 0, 0o755), Entry("b/x", D, 3, 0o644)])
    assert a == b and a.digest == b.digest
    assert [e.mode for e in a.entries] == [MODE_EXEC, MODE_FILE]
    expected = (
        '{"entries":[["a","'
        + "b" * 64
        + '",0,493],["b/x","'
        + D
        + '",3,420]],"format":"modelog.manifest.v1"}'
    )
    assert a.canonical() == expected.encode()
    assert a.digest == hashlib.sha256(expected.encode()).hexdigest()
    assert Manifest.parse(a.canonical()) == a
    assert (a.file_count, a.total_size) == (2, 3)


def test_non_ascii_paths_are_kept_as_utf8_in_code_point_order() -> None:
    m = Manifest.build(entries("z", "\u00e9t\u00e9.csv", "\U0001f600.bin", "A"))
    assert [e.path for e in m.entries] == ["A", "z", "\u00e9t\u00e9.csv", "\U0001f600.bin"]
    assert "\u00e9t\u00e9".encode() in m.canonical()


def test_parse_refuses_what_is_not_a_manifest() -> None:
    for data in (b"not json", b'{"format":"other","entries":[]}', b'{"format":"modelog.manifest.v1"}'):
        with pytest.raises(ValueError, match="not a manifest"):
            Manifest.parse(data)


def test_diff_lists_added_removed_and_modified_paths() -> None:
    old = Manifest.build(
        [Entry("same", D, 1), Entry("gone", D, 2), Entry("edit", D, 3), Entry("chmod", D, 4)]
    )
    new = Manifest.build(
        [Entry("same", D, 1), Entry("new", D, 5), Entry("edit", "c" * 64, 6), Entry("chmod", D, 4, MODE_EXEC)]
    )
    d = diff(old, new)
    assert [c.path for c in d.added] == ["new"]
    assert [c.path for c in d.removed] == ["gone"]
    assert [(c.path, c.old and c.old.size, c.new and c.new.size) for c in d.modified] == [
        ("chmod", 4, 4),
        ("edit", 3, 6),
    ]
    assert d.unchanged == 1


def test_fold_treats_case_and_normalisation_variants_alike() -> None:
    assert fold("Caf\u00e9") == fold("CAFE\u0301") == fold("caf\u00e9")
