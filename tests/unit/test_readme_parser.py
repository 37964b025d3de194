"""How the README test reads the README: blocks in order, their language, line and skip marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.readme_blocks import Block, Outcome, ReadmeError, failure_report, parse

DOC = """# Title

Some text with `inline code`.

```sh
modelog runs list -e churn
```

<!-- readme-test: skip (needs GitHub) -->
```python
urllib.request.urlopen(req)
```

<!-- readme-test: skip (a GitHub Actions workflow) -->

```yaml
on: push
```

```
modelog ready on 127.0.0.1:50051
```

````Python title="x.py"
print("```")
````
"""


def test_blocks_come_in_order_with_their_opening_line_and_language() -> None:
    blocks = parse(DOC)
    assert [(b.line, b.language) for b in blocks] == [
        (5, "sh"),
        (10, "python"),
        (16, "yaml"),
        (20, ""),
        (24, "python"),
    ]
    assert blocks[0].text == "modelog runs list -e churn\n"
    assert blocks[4].text == 'print("```")\n'  # a longer fence holds a shorter one


def test_a_marker_skips_only_the_block_right_after_it_with_its_reason() -> None:
    skips = [b.skip for b in parse(DOC)]
    assert skips == [None, "needs GitHub", "a GitHub Actions workflow", None, None]


def test_only_sh_and_python_blocks_are_runnable() -> None:
    assert [b.kind for b in parse(DOC)] == ["sh", "python", None, None, "python"]
    assert Block(1, "bash", "").kind == "sh" and Block(1, "py", "").kind == "python"


def test_ids_name_the_line_and_language() -> None:
    assert [b.id for b in parse(DOC)] == ["L5-sh", "L10-python", "L16-yaml", "L20-text", "L24-python"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("<!-- readme-test: skip (x) -->\nsome prose\n```sh\nls\n```\n", "line 1: marker not followed"),
        ("text\n<!-- readme-test: skip (x) -->\n", "line 2: marker not followed"),
        ("<!-- readme-test: skip (x) -->\n<!-- readme-test: skip (y) -->\n```sh\n```\n", "line 1: marker"),
        ("<!-- readme-test: run -->\n```sh\nls\n```\n", "line 1: unknown marker"),
        ("<!-- readme-test: skip -->\n```sh\nls\n```\n", "line 1: unknown marker"),
        ("<!-- readme-test skip (x) -->\n```sh\nls\n```\n", "line 1: cannot read the marker"),
        ("a\n```sh\nls\n", "line 2: the code block never closes"),
    ],
)
def test_a_marker_or_fence_the_test_cannot_honour_is_an_error_naming_its_line(doc: str, message: str) -> None:
    with pytest.raises(ReadmeError, match=message):
        parse(doc)


def test_the_readme_parses_and_every_named_language_is_run_or_marked() -> None:
    blocks = parse((Path(__file__).resolve().parents[2] / "README.md").read_text())
    assert [b for b in blocks if b.language and b.kind is None and not b.skip] == []
    assert sum(1 for b in blocks if b.kind and not b.skip) >= 10


def test_a_failure_report_names_the_readme_line_that_failed_and_shows_the_output() -> None:
    block = Block(40, "sh", "modelog runs list -e churn\nmodelog runs show --bad\nmodelog x\n")
    report = failure_report(block, Outcome(2, "out", "modelog: INVALID_ARGUMENT: --bad", 0.4, 2))
    assert report.startswith("README line 40: the sh block exited 2 after 0.4s at line 42\n")
    assert "   42 > modelog runs show --bad" in report and "   41   modelog runs list" in report
    assert report.endswith("--- stderr (tail)\nmodelog: INVALID_ARGUMENT: --bad")
    hung = failure_report(block, Outcome(None, "", "", 60.0))
    assert hung.startswith("README line 40: the sh block did not finish within 60s\n")


def test_an_env_marker_names_the_interpreter_of_the_next_block_only() -> None:
    doc = (
        "<!-- readme-test: env mlflow -->\n```python\nimport mlflow\n```\n\n```python\nimport modelog\n```\n"
    )
    first, second = parse(doc)
    assert (first.env, first.skip, first.kind) == ("mlflow", None, "python")
    assert second.env is None
