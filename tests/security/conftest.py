"""The `stack` every attack runs against: a fresh database and a whole platform per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.security.stackfix import SecurityStack


@pytest.fixture
async def stack(fresh_db: str, modelog_home: Path) -> AsyncIterator[SecurityStack]:
    s = await SecurityStack.open(fresh_db, modelog_home)
    yield s
    await s.close()
