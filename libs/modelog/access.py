"""Projects, grants and groups from Python: who may read, change, manage or approve what.

import modelog
modelog.access.create_project("fraud")
modelog.access.grant("bob", "project", "fraud", "EDIT")          # a token
modelog.access.grant("group:analysts", "model", "scorer", "APPROVE")
modelog.access.grants(scope_kind="model", scope="scorer", as_of=march)   # who could approve, then
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from modelog._client import Connection
from modelog._gen.identity.v1 import access_pb2 as pb
from modelog._gen.identity.v1 import access_pb2_grpc
from modelog._time import when as _when
from modelog.errors import from_rpc


@dataclass(frozen=True)
class Project:
    name: str
    description: str
    created_by: str
    created_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Grant:
    principal: str
    """A token name, or `group:<name>`."""
    scope_kind: str
    scope: str
    permission: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _call(connection: Connection | None, rpc: str, request: Any) -> Any:
    if connection is None:
        from modelog._session import default

        connection = default()._online().conn
    method: Callable[..., Any] = getattr(access_pb2_grpc.AccessStub(connection.channel), rpc)
    try:
        return method(request, timeout=60)
    except grpc.RpcError as exc:
        raise from_rpc(exc) from None


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _info(principal: str, scope_kind: str, scope: str, permission: str) -> pb.GrantInfo:
    return pb.GrantInfo(
        principal=principal, scope_kind=scope_kind, scope=scope, permission=permission.upper()
    )


def create_project(name: str, description: str = "", *, connection: Connection | None = None) -> Project:
    p = _call(connection, "CreateProject", pb.CreateProjectRequest(name=name, description=description))
    return Project(p.name, p.description, p.created_by, _when(p.created_at))


def projects(
    *, as_of: datetime | None = None, connection: Connection | None = None
) -> builtins.list[Project]:
    resp = _call(connection, "ListProjects", pb.ListProjectsRequest(as_of=_ts(as_of)))
    return [Project(p.name, p.description, p.created_by, _when(p.created_at)) for p in resp.projects]


def grant(
    principal: str, scope_kind: str, scope: str, permission: str, *, connection: Connection | None = None
) -> bool:
    """Give `principal` the permission; False when it already held it (nothing was written)."""
    req = pb.AddGrantRequest(grant=_info(principal, scope_kind, scope, permission))
    return bool(_call(connection, "AddGrant", req).changed)


def revoke(
    principal: str, scope_kind: str, scope: str, permission: str, *, connection: Connection | None = None
) -> None:
    _call(
        connection,
        "RemoveGrant",
        pb.RemoveGrantRequest(grant=_info(principal, scope_kind, scope, permission)),
    )


def grants(
    *,
    principal: str = "",
    scope_kind: str = "",
    scope: str = "",
    as_of: datetime | None = None,
    effective: bool = False,
    connection: Connection | None = None,
) -> builtins.list[Grant]:
    """The grants in force (now, or at `as_of`); `effective` with a token: also its groups' grants."""
    req = pb.ListGrantsRequest(
        principal=principal, scope_kind=scope_kind, scope=scope, as_of=_ts(as_of), effective=effective
    )
    resp = _call(connection, "ListGrants", req)
    return [Grant(g.principal, g.scope_kind, g.scope, g.permission) for g in resp.grants]


def add_to_group(group: str, token: str, *, connection: Connection | None = None) -> bool:
    return bool(_call(connection, "AddGroupMember", pb.GroupMemberRequest(group=group, member=token)).changed)


def remove_from_group(group: str, token: str, *, connection: Connection | None = None) -> None:
    _call(connection, "RemoveGroupMember", pb.GroupMemberRequest(group=group, member=token))


def groups(
    *, as_of: datetime | None = None, connection: Connection | None = None
) -> dict[str, builtins.list[str]]:
    resp = _call(connection, "ListGroups", pb.ListGroupsRequest(as_of=_ts(as_of)))
    return {g.name: builtins.list(g.members) for g in resp.groups}
