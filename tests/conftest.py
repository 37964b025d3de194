"""Session fixtures: one real PostgreSQL and one real Kafka-protocol broker for the whole run.

MODELOG_PG_DSN / MODELOG_KAFKA_BOOTSTRAP point the tests at external servers instead of the
embedded ones.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modelog_platform.embedded import EmbeddedBroker, EmbeddedPostgres


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("MODELOG_PG_DSN")
    if external:
        yield external
        return
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    dsn = pg.start()
    try:
        yield dsn
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("MODELOG_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        broker.stop()


def dsn_for_database(dsn: str, database: str) -> str:
    """Same server, another database (the DSN's path is the database name)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture
async def fresh_db(pg_dsn: str) -> AsyncIterator[str]:
    """A brand-new database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield dsn_for_database(pg_dsn, name)
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def pool(fresh_db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(fresh_db, min_size=2, max_size=24)
    assert p is not None
    yield p
    await p.close()


@pytest.fixture
def modelog_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


_SPANS = InMemorySpanExporter()


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Every span the test process records (one provider per process is all OpenTelemetry allows)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_SPANS))
        trace.set_tracer_provider(provider)
    return _SPANS


_METRICS = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[_METRICS]))


@pytest.fixture(scope="session")
def metric_reader() -> InMemoryMetricReader:
    """The metrics this test process records (installed at import: instruments bind on first use)."""
    return _METRICS
