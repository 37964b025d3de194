"""gRPC Identity: create, list and revoke bearer tokens."""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import PermissionDenied
from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog_platform import context
from modelog_platform.identity import TokenAuthority


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _require_admin() -> context.RequestContext:
    ctx = context.current()
    if "admin" not in ctx.roles:
        raise PermissionDenied(f"{ctx.actor!r} may not manage tokens: the admin role is required")
    return ctx


class IdentityServicer(identity_pb2_grpc.IdentityServicer):
    def __init__(self, authority: TokenAuthority) -> None:
        self.authority = authority

    async def CreateToken(
        self, request: identity_pb2.CreateTokenRequest, ctx: grpc.aio.ServicerContext
    ) -> identity_pb2.CreateTokenResponse:
        rc = _require_admin()
        secret, principal = await self.authority.create(request.name, list(request.roles), rc.metadata())
        return identity_pb2.CreateTokenResponse(
            token=identity_pb2.TokenInfo(
                name=principal.name, roles=list(principal.roles), created_by=rc.actor
            ),
            secret=secret,
        )

    async def ListTokens(
        self, request: identity_pb2.ListTokensRequest, ctx: grpc.aio.ServicerContext
    ) -> identity_pb2.ListTokensResponse:
        _require_admin()
        return identity_pb2.ListTokensResponse(
            tokens=[
                identity_pb2.TokenInfo(
                    name=r["name"],
                    roles=list(r["roles"]),
                    created_by=r["created_by"],
                    created_at=_ts(r["created_at"]),
                    revoked=r["revoked_at"] is not None,
                )
                for r in await self.authority.list()
            ]
        )

    async def RevokeToken(
        self, request: identity_pb2.RevokeTokenRequest, ctx: grpc.aio.ServicerContext
    ) -> identity_pb2.RevokeTokenResponse:
        rc = _require_admin()
        await self.authority.revoke(request.name, rc.metadata())
        return identity_pb2.RevokeTokenResponse(token=identity_pb2.TokenInfo(name=request.name, revoked=True))

    async def WhoAmI(
        self, request: identity_pb2.WhoAmIRequest, ctx: grpc.aio.ServicerContext
    ) -> identity_pb2.WhoAmIResponse:
        rc = context.current()
        return identity_pb2.WhoAmIResponse(actor=rc.actor, roles=list(rc.roles))
