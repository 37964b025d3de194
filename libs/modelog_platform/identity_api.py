"""gRPC Identity: create, list, rotate and revoke bearer tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import InvalidArgument
from modelog._gen.identity.v1 import identity_pb2, identity_pb2_grpc
from modelog_platform import context
from modelog_platform.identity import Principal, TokenAuthority


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _when(msg: object, field: str) -> datetime | None:
    """An optional Timestamp field as an aware datetime; None when unset."""
    if not msg.HasField(field):  # type: ignore[attr-defined]
        return None
    value: Timestamp = getattr(msg, field)
    return value.ToDatetime(tzinfo=UTC)


def _rotated(secret: str, principal: Principal) -> identity_pb2.RotateTokenResponse:
    return identity_pb2.RotateTokenResponse(
        token=identity_pb2.TokenInfo(
            name=principal.name, roles=list(principal.roles), expires_at=_ts(principal.expires_at)
        ),
        secret=secret,
    )


class IdentityServicer(identity_pb2_grpc.IdentityServicer):
    def __init__(self, authority: TokenAuthority) -> None:
        self.authority = authority

    async def CreateToken(
        self, request: identity_pb2.CreateTokenRequest, ctx: grpc.aio.ServicerContext
    ) -> identity_pb2.CreateTokenResponse:
        rc = context.current()
        secret, principal = await self.authority.create(
            request.name, list(request.roles), rc.metadata(), _when(request, "expires_at")
        )
        return identity_pb2.CreateTokenResponse(
            token=identity_pb2.TokenInfo(
                name=principal.name,
                roles=list(principal.roles),
                created_by=rc.actor,
                expires_at=_ts(principal.expires_at),
            ),
            secret=secret,
        )

    async def ListTokens(
        self, request: identity_pb2.ListTokensRequest, ctx: grpc.aio.ServicerContext
    ) -> identity_pb2.ListTokensResponse:
        return identity_pb2.ListTokensResponse(
            tokens=[
                identity_pb2.TokenInfo(
                    name=r["name"],
                    roles=list(r["roles"]),
                    created_by=r["created_by"],
                    created_at=_ts(r["created_at"]),
                    revoked=r["revoked_at"] is not None,
                    expires_at=_ts(r["expires_at"]),
                    last_used_at=_ts(r["last_used_at"]),
                )
                for r in await self.authority.list()
            ]
        )

    async def RevokeToken(
        self, request: identity_pb2.RevokeTokenRequest, ctx: grpc.aio.ServicerContext
    ) -> identity_pb2.RevokeTokenResponse:
        rc = context.current()
        await self.authority.revoke(request.name, rc.metadata())
        return identity_pb2.RevokeTokenResponse(token=identity_pb2.TokenInfo(name=request.name, revoked=True))

    async def RotateToken(
        self, request: identity_pb2.RotateTokenRequest, ctx: grpc.aio.ServicerContext
    ) -> identity_pb2.RotateTokenResponse:
        rc = context.current()
        secret, principal = await self.authority.rotate(
            request.name, rc.metadata(), _when(request, "expires_at")
        )
        return _rotated(secret, principal)

    async def RotateOwnToken(
        self, request: identity_pb2.RotateOwnTokenRequest, ctx: grpc.aio.ServicerContext
    ) -> identity_pb2.RotateTokenResponse:
        rc = context.current()
        if request.name != rc.actor:
            raise InvalidArgument.field(
                "name",
                f"must be the calling token's own name, {rc.actor!r} (got {request.name!r}); "
                "RotateToken rotates other tokens",
            )
        secret, principal = await self.authority.rotate(rc.actor, rc.metadata(), _when(request, "expires_at"))
        return _rotated(secret, principal)

    async def WhoAmI(
        self, request: identity_pb2.WhoAmIRequest, ctx: grpc.aio.ServicerContext
    ) -> identity_pb2.WhoAmIResponse:
        rc = context.current()
        return identity_pb2.WhoAmIResponse(actor=rc.actor, roles=list(rc.roles))
