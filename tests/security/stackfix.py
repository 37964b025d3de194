"""A whole platform in-process (every service, no bus) for the attack suite, with tokens on demand."""

from __future__ import annotations

from pathlib import Path

import grpc

from eventlog import Metadata
from modelog_platform.app import Platform, Server, start_server
from modelog_platform.settings import Settings


async def heads(platform: Platform) -> dict[str, int]:
    """Every log's head position (taken before a call: 'wrote nothing' compares two of these)."""
    return {name: (await store.head())[0] for name, store in platform.stores.items()}


class SecurityStack:
    def __init__(self, platform: Platform, server: Server, admin: str) -> None:
        self.platform, self.server, self.admin = platform, server, admin
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")

    @classmethod
    async def open(cls, dsn: str, home: Path) -> SecurityStack:
        platform = await Platform.open(Settings(home=home, addr="127.0.0.1:0"), dsn)
        path = await platform.ensure_admin_token()
        server = await start_server(platform, "127.0.0.1:0")
        return cls(platform, server, path.read_text().strip())

    async def token(self, name: str, *roles: str) -> str:
        assert self.platform.authority is not None
        secret, _ = await self.platform.authority.create(name, list(roles), Metadata(actor="admin"))
        return secret

    def md(self, token: str | None = None) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {token or self.admin}")]

    async def close(self) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.platform.close()
