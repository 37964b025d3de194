"""infra/docs/topics.md names every event each log publishes, so the topic docs cannot drift."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from modelog_platform import identity

DOC = Path(__file__).resolve().parents[2] / "infra" / "docs" / "topics.md"


def catalogue() -> dict[str, set[str]]:
    rows = re.findall(r"^\| (\w+) \| ([A-Z][\w, ]+) \|$", DOC.read_text(), re.M)
    return {log: {t.strip() for t in types.split(",")} for log, types in rows}


@pytest.mark.parametrize("service", ["tracking", "registry", "artifacts", "monitoring", "audit"])
def test_the_topic_docs_list_exactly_the_events_of_each_log(service: str) -> None:
    registry = importlib.import_module(f"modelog_services.{service}.events").registry
    assert catalogue()[service] == set(registry._classes)
    declared = {name: int(v) for name, v in re.findall(r"(\w+) \(version (\d+)", DOC.read_text())}
    versions = {name: cls.schema_version for name, cls in registry._classes.items()}
    assert versions == {name: declared.get(name, 1) for name in versions}, "the docs name each version"


def test_the_topic_docs_list_the_identity_events() -> None:
    assert catalogue()["identity"] == {identity.TokenIssued.type, identity.TokenRevoked.type}
