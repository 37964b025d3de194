"""gRPC Access: projects, grants and groups. A translator: request -> AccessControl -> reply."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import NotFound
from modelog._gen.identity.v1 import access_pb2 as pb
from modelog._gen.identity.v1 import access_pb2_grpc
from modelog_platform import context
from modelog_platform.access import (
    AccessControl,
    AccessState,
    AddGrant,
    AddMember,
    CreateProject,
    RemoveGrant,
    RemoveMember,
    grant_of,
    principal_name,
    project_name,
)
from modelog_platform.authz import Grant, Perm
from modelog_platform.identity import TokenAuthority
from modelog_platform.instants import as_of


def _info(g: Grant) -> pb.GrantInfo:
    return pb.GrantInfo(principal=g.principal, scope_kind=g.scope_kind, scope=g.scope, permission=g.perm)


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


class AccessServicer(access_pb2_grpc.AccessServicer):
    def __init__(self, control: AccessControl, authority: TokenAuthority) -> None:
        self.control = control
        self.authority = authority

    async def _principal_exists(self, principal: str) -> None:
        if not principal.startswith("group:") and not await self.authority.exists(principal):
            raise NotFound(f"no token named {principal!r} (a group is named group:<name>)")

    async def _state(self, request: object) -> AccessState:
        """Folded from the identity log: up to `as_of` when given, else all of it (one way to answer
        both "now" and "then", so the two can never disagree)."""
        return await self.control.state(as_of(request))

    async def CreateProject(
        self, request: pb.CreateProjectRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.Project:
        rc = context.current()
        name = project_name(request.name, "name")
        await self.control.change(CreateProject(name, request.description), rc.metadata())
        return pb.Project(
            name=name, description=request.description, created_by=rc.actor, created_at=_ts(datetime.now(UTC))
        )

    async def ListProjects(
        self, request: pb.ListProjectsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ListProjectsResponse:
        state = await self._state(request)
        rows = {r["name"]: r for r in await self.control.projects()}
        visible = _visible_projects(state)
        out = []
        for name in sorted(state.projects):
            if visible is not None and name not in visible:
                continue
            row = rows.get(name)
            out.append(
                pb.Project(
                    name=name,
                    description=state.projects[name],
                    created_by=row["created_by"] if row else "",
                    created_at=_ts(row["created_at"]) if row else None,
                )
            )
        return pb.ListProjectsResponse(projects=out)

    async def AddGrant(
        self, request: pb.AddGrantRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.AddGrantResponse:
        g = request.grant
        grant = grant_of(g.principal, g.scope_kind, g.scope, g.permission)
        await self._principal_exists(grant.principal)
        if grant.scope_kind == "project" and not await self.control.project_exists(grant.scope):
            raise NotFound(f"project {grant.scope!r} not found")
        changed = await self.control.change(AddGrant(grant), context.current().metadata())
        return pb.AddGrantResponse(changed=changed)

    async def RemoveGrant(
        self, request: pb.RemoveGrantRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.RemoveGrantResponse:
        g = request.grant
        grant = grant_of(g.principal, g.scope_kind, g.scope, g.permission)
        await self.control.change(RemoveGrant(grant), context.current().metadata())
        return pb.RemoveGrantResponse()

    async def ListGrants(
        self, request: pb.ListGrantsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ListGrantsResponse:
        state = await self._state(request)
        if request.principal:
            principal_name(request.principal)
        grants = (
            state.grants_of(request.principal)
            if request.effective and request.principal
            else sorted(state.grants, key=lambda g: (g.principal, g.scope_kind, g.scope, g.perm))
        )
        rc = context.current()
        everything = rc.access is None or Perm.READ in rc.access.everywhere
        mine = {rc.actor, *(f"group:{g}" for g in state.groups_of(rc.actor))}
        out = [
            _info(g)
            for g in grants
            if (request.effective or not request.principal or g.principal == request.principal)
            and (not request.scope_kind or g.scope_kind == request.scope_kind)
            and (not request.scope or g.scope == request.scope)
            and (everything or g.principal in mine)
        ]
        return pb.ListGrantsResponse(grants=out)

    async def AddGroupMember(
        self, request: pb.GroupMemberRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GroupMemberResponse:
        group, member = project_name(request.group, "group"), request.member
        principal_name(member)
        await self._principal_exists(member)
        changed = await self.control.change(AddMember(group, member), context.current().metadata())
        return pb.GroupMemberResponse(changed=changed)

    async def RemoveGroupMember(
        self, request: pb.GroupMemberRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.GroupMemberResponse:
        group = project_name(request.group, "group")
        await self.control.change(RemoveMember(group, request.member), context.current().metadata())
        return pb.GroupMemberResponse(changed=True)

    async def ListGroups(
        self, request: pb.ListGroupsRequest, ctx: grpc.aio.ServicerContext
    ) -> pb.ListGroupsResponse:
        state = await self._state(request)
        return pb.ListGroupsResponse(
            groups=[pb.Group(name=n, members=sorted(m)) for n, m in sorted(state.members.items()) if m]
        )


def _visible_projects(state: AccessState) -> set[str] | None:
    rc = context.current()
    access = rc.access
    if access is None or Perm.READ in access.everywhere:
        return None
    return {g.scope for g in access.grants if g.scope_kind == "project"}
