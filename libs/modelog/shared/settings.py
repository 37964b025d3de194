"""One settings object for every process, the SDK and CLI included, read from MODELOG_* environment
variables."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES: tuple[str, ...] = ("tracking", "registry", "artifacts", "monitoring", "audit")
"""The five bounded contexts; each owns one log (a PostgreSQL schema of the same name)."""

PLATFORM_LOGS: tuple[str, ...] = ("identity",)
"""Logs the platform itself keeps (tokens), hosted beside the services' logs."""


_SECRET_KEYS = frozenset({"password", "sslpassword", "passfile", "sslkey"})
_KEYWORD_SECRET = re.compile(r"\b(password|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
REDACTED = "***"


def redact_dsn(dsn: str) -> str:
    """The DSN as it may be printed or logged: any password (in the user info, a `password=` query
    parameter or a libpq `key=value` string) replaced by ***. The one helper for every place that
    shows a DSN."""
    if "://" not in dsn:
        return _KEYWORD_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", dsn)
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hosts = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}:{REDACTED}@{hosts}" if colon else netloc
        query = [(k, REDACTED if k.lower() in _SECRET_KEYS else v) for k, v in parse_qsl(parts.query, True)]
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="/*")))
    except ValueError:
        return f"{dsn.partition('://')[0]}://{REDACTED}"


class Settings(BaseSettings):
    """Defaults work on the embedded stack with no configuration at all."""

    model_config = SettingsConfigDict(env_prefix="MODELOG_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".modelog")
    addr: str = "127.0.0.1:50051"
    pg_dsn: str | None = None
    kafka_bootstrap: str | None = None
    url: str | None = None
    token: str | None = None
    group_commit_max: int = 256
    """Most commands one append transaction may carry; 1 disables group commit."""
    pool_size: int = 32
    workers: int = Field(default=1, ge=1, le=16)
    """Processes `modelog up` runs, each hosting every service on the same ports (`--workers`)."""
    reuse_port: bool = False
    """Listen with SO_REUSEPORT, so several processes share MODELOG_ADDR and MODELOG_HTTP_ADDR and the
    kernel spreads connections over them (`modelog up --workers` sets it for its workers)."""
    topic_prefix: str = "modelog"
    """Kafka topics are `<prefix>.<service>.events.v1`."""
    kafka_max_message_bytes: int = Field(default=1_000_000, ge=16_384)
    """Largest Kafka message the relays write; larger events go out as chunks. Keep it at or below
    the broker's `message.max.bytes` (Apache Kafka's default is 1,048,588)."""
    peers: str = ""
    """Where other services' EventLog APIs are, for healing: `tracking=host:port,audit=host:port`.
    Logs not named here are read from MODELOG_URL (or this process's own address)."""
    tls: bool = False
    """Serve gRPC over TLS (`modelog up --tls`). Without MODELOG_TLS_CERT/KEY, a local CA and a server
    certificate are created in MODELOG_HOME/tls (ca.pem is what clients trust) and reused."""
    tls_cert: Path | None = None
    """This process's certificate (PEM, chain allowed); implies TLS. Presented to peers too."""
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """Require client certificates signed by this CA (mutual TLS between services)."""
    ca_file: Path | None = None
    """What the SDK, CLI and services' internal clients trust when connecting over TLS; setting it
    makes clients use TLS."""
    http_addr: str = "127.0.0.1:5000"
    """Where the HTTP surface listens (MLflow's REST API, the JSON API); "off" serves gRPC only."""
    http_allowed_hosts: str = ""
    """Host names HTTP requests may name besides IP literals and localhost (comma separated; "*" for
    any, behind a proxy that checks). Anything else is refused: DNS rebinding cannot reach us."""
    http_cors_origins: str = ""
    """Origins allowed to call the HTTP API from a browser (comma separated). Empty: no CORS."""
    http_max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest API request body; artifact uploads stream and are not capped by it."""
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    webhook_allow: str = ""
    """Hosts and CIDRs webhooks may reach although they are loopback/private/link-local/reserved
    (comma separated: `127.0.0.1,10.0.0.0/8,hooks.internal`). Empty: public addresses only."""
    webhook_attempts: int = Field(default=6, ge=1, le=50)
    """Tries per event before its delivery counts as failed."""
    webhook_backoff_base_s: float = Field(default=1.0, ge=0.0)
    """Retry n waits a random time in [0, min(max, base * 2**(n-1))] (exponential, full jitter)."""
    webhook_backoff_max_s: float = Field(default=300.0, ge=0.0)
    webhook_disable_after: int = Field(default=5, ge=1)
    """Consecutive failed deliveries (each after every attempt) that disable a webhook."""
    webhook_connect_timeout_s: float = Field(default=5.0, gt=0.0)
    webhook_read_timeout_s: float = Field(default=15.0, gt=0.0)

    @cached_property
    def admin_token_path(self) -> Path:
        return self.home / "admin-token"

    @cached_property
    def bootstrap_path(self) -> Path:
        """Where a running `modelog up` says its Kafka broker is (written at start, removed at stop)."""
        return self.home / "kafka-bootstrap"

    @cached_property
    def pgdata(self) -> Path:
        return self.home / "postgres"

    @cached_property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def serves_tls(self) -> bool:
        return self.tls or self.tls_cert is not None

    def client_url(self) -> str:
        """Where the SDK and CLI connect: MODELOG_URL, else the embedded address."""
        return self.url or self.addr

    def client_bootstrap(self) -> str | None:
        """MODELOG_KAFKA_BOOTSTRAP, else the broker of the `modelog up` running on MODELOG_HOME."""
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        try:
            return self.bootstrap_path.read_text().strip() or None
        except OSError:
            return None

    def client_token(self) -> str | None:
        """MODELOG_TOKEN, else the admin token the embedded stack wrote on first start."""
        if self.token:
            return self.token.strip()
        try:
            return self.admin_token_path.read_text().strip() or None
        except OSError:
            return None
