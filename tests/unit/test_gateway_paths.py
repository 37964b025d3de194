"""The one check of an artifact path an MLflow request names: "." means where it stands (MLflow's
`validate_path_is_safe` allows it, and the stock client lists "." for a run's whole root), while every
form of ".." and the other escapes stays refused."""

from __future__ import annotations

import pytest

from eventlog import InvalidArgument
from modelog_services.gateway.mlflow.paths import safe_path


@pytest.mark.parametrize(
    ("path", "plain"),
    [
        (".", ""),
        ("./dir", "dir"),
        ("dir/.", "dir"),
        ("a/./b/./c.txt", "a/b/c.txt"),
        ("0/abc/artifacts/.", "0/abc/artifacts"),
        ("v1..2.txt", "v1..2.txt"),
        (".hidden", ".hidden"),
    ],
)
def test_a_dot_segment_is_dropped_not_refused(path: str, plain: str) -> None:
    assert safe_path(path) == plain


@pytest.mark.parametrize(
    "path",
    [
        "..",
        "../x",
        "dir/..",
        "./../x",
        "a/./../../x",
        "%2e%2e/x",
        "%252e%252e/x",
        "a/%2e/b",
        "..\\x",
        "/etc/passwd",
        "a//b",
        ".//x",
    ],
)
def test_dot_dot_and_the_other_escapes_stay_refused(path: str) -> None:
    with pytest.raises(InvalidArgument, match="artifact path"):
        safe_path(path)
