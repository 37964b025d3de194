"""The settings every process reads live in modelog.shared.settings (the SDK reads them too); this
name stays for code that imports them from here."""

from __future__ import annotations

from modelog.shared.settings import PLATFORM_LOGS, REDACTED, SERVICES, Settings, redact_dsn

__all__ = ["PLATFORM_LOGS", "REDACTED", "SERVICES", "Settings", "redact_dsn"]
