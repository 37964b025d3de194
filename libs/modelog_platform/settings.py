"""One settings object for every process, read from MODELOG_* environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES: tuple[str, ...] = ("tracking", "registry", "artifacts", "monitoring", "audit")
"""The five bounded contexts; each owns one log (a PostgreSQL schema of the same name)."""

PLATFORM_LOGS: tuple[str, ...] = ("identity",)
"""Logs the platform itself keeps (tokens), hosted beside the services' logs."""


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
    topic_prefix: str = "modelog"
    """Kafka topics are `<prefix>.<service>.events.v1`."""
    kafka_max_message_bytes: int = Field(default=1_000_000, ge=16_384)
    """Largest Kafka message the relays write; larger events go out as chunks. Keep it at or below
    the broker's `message.max.bytes` (Apache Kafka's default is 1,048,588)."""
    peers: str = ""
    """Where other services' EventLog APIs are, for healing: `tracking=host:port,audit=host:port`.
    Logs not named here are read from MODELOG_URL (or this process's own address)."""
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
    def pgdata(self) -> Path:
        return self.home / "postgres"

    @cached_property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def client_url(self) -> str:
        """Where the SDK and CLI connect: MODELOG_URL, else the embedded address."""
        return self.url or self.addr

    def client_token(self) -> str | None:
        """MODELOG_TOKEN, else the admin token the embedded stack wrote on first start."""
        if self.token:
            return self.token.strip()
        try:
            return self.admin_token_path.read_text().strip() or None
        except OSError:
            return None
