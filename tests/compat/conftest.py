"""The stock MLflow clients the compatibility suite speaks as: 3.17 everywhere, and 2.9 (the oldest
client the HTTP surface promises) for the tests that take `client`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs import MLFLOW2_PYTHON, MLFLOW_PYTHON


@dataclass(frozen=True)
class Client:
    python: Path
    suffix: str
    """Appended to the names a test creates, so both clients' runs of it share one platform."""


@pytest.fixture(
    params=[Client(MLFLOW_PYTHON, ""), Client(MLFLOW2_PYTHON, "-v2")], ids=["mlflow-3.17", "mlflow-2.9"]
)
def client(request: pytest.FixtureRequest) -> Client:
    c: Client = request.param
    return c
