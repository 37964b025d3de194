"""Where a webhook may point: public addresses only, unless the allow-list names the host or network.

Checked when a webhook is registered and again before every delivery (DNS may have changed), on the
addresses the request then connects to, so a name cannot resolve to a public address for the check
and a private one for the request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from eventlog import InvalidArgument

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def why_blocked(ip: Address) -> str | None:
    """The kind of address a webhook must not reach by default, or None for a public one."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return why_blocked(ip.ipv4_mapped)
    for kind in ("loopback", "unspecified", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if not ip.is_global:  # shared (100.64/10), documentation and benchmarking ranges
        return "non-global"
    return None


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        hosts: set[str] = set()
        networks: list[Network] = []
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, ip: Address) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(ip in net for net in self.networks)


async def resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[Address] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    return out


class Blocked(Exception):
    """The URL's host resolves to an address webhooks may not reach; the message says which and why."""


async def safe_addresses(url: str, allow: AllowList) -> list[Address]:
    """The addresses to connect to; raises Blocked if the host does not resolve or any address is
    refused (one refused address refuses the URL: otherwise a retry could land on it)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise Blocked(f"{host!r} does not resolve: {exc.strerror or exc}") from None
    if not addresses:
        raise Blocked(f"{host!r} does not resolve")
    for ip in addresses:
        kind = why_blocked(ip)
        if kind is not None and not allow.allows(host, ip):
            raise Blocked(
                f"{host!r} resolves to {ip}, a {kind} address; webhooks reach public addresses only "
                "unless MODELOG_WEBHOOK_ALLOW names the host or its network"
            )
    return addresses


async def check(url: str, allow: AllowList, field: str = "url") -> None:
    """At registration: a refused URL is INVALID_ARGUMENT and nothing is written."""
    try:
        await safe_addresses(url, allow)
    except Blocked as exc:
        raise InvalidArgument.field(field, str(exc)) from None
