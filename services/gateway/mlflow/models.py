"""(being written)"""

from __future__ import annotations

from starlette.routing import BaseRoute

from modelog_services.gateway.upstream import Upstream


def routes(upstream: Upstream) -> list[BaseRoute]:
    return []
