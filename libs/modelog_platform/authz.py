"""Who may do what: one permission table for every RPC, checked once, before any handler runs.

A rule names the permission a method needs and the resource it acts on (read off the request). The
caller's permissions come from its role (a grant on every project) and from grants on projects and on
single resources (an experiment, a registered model), to the token or to a group it belongs to. A
resource the caller may not read does not exist for it: NOT_FOUND, with the message a missing one gets.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from eventlog.errors import NotFound, PermissionDenied


class Perm(StrEnum):
    READ = "READ"
    EDIT = "EDIT"
    MANAGE = "MANAGE"
    """MLflow's word: everything on the resource, its permissions and policy included."""
    APPROVE = "APPROVE"
    """Approve or reject stage transitions (the model's policy says which stages need it)."""
    ADMIN = "ADMIN"
    """The platform itself: tokens, grants, rebuilds, garbage collection, webhooks, raw logs."""


IMPLIED: Mapping[Perm, frozenset[Perm]] = {
    Perm.READ: frozenset({Perm.READ}),
    Perm.EDIT: frozenset({Perm.READ, Perm.EDIT}),
    Perm.APPROVE: frozenset({Perm.READ, Perm.APPROVE}),
    Perm.MANAGE: frozenset({Perm.READ, Perm.EDIT, Perm.APPROVE, Perm.MANAGE}),
    Perm.ADMIN: frozenset(Perm),
}

ROLE_PERM: Mapping[str, Perm] = {"viewer": Perm.READ, "member": Perm.EDIT, "admin": Perm.ADMIN}
"""A role is a grant on every project (and, for admin, on the platform)."""

GRANTABLE = (Perm.READ, Perm.EDIT, Perm.MANAGE, Perm.APPROVE)
SCOPE_KINDS = ("project", "experiment", "model")
DEFAULT_PROJECT = "default"
NEW_IN = "new_in"
"""The resource kind of "the project a create would put a new thing in" (resolved like a project)."""


@dataclass(frozen=True, slots=True)
class Resource:
    """What a request acts on: `kind` is project, experiment, run, model, artifact, monitor or blob."""

    kind: str
    key: str


@dataclass(frozen=True, slots=True)
class Place:
    """Where a resource lives: its project, and the scopes a resource-level grant can name."""

    project: str
    scopes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Grant:
    principal: str
    """A token name, or `group:<name>`."""
    scope_kind: str
    scope: str
    perm: Perm


Extract = Callable[[Any], Iterable[Resource]]


@dataclass(frozen=True, slots=True)
class Rule:
    """What a method needs. `resources` None: a platform-wide permission (from a role); `any`: the
    caller needs the permission somewhere (lists filter what they return to what it may read)."""

    perm: Perm | None
    resources: Extract | None = None
    anywhere: bool = False


PUBLIC = Rule(None)
"""Any authenticated caller (who am I, the audit public key)."""


def platform(perm: Perm) -> Rule:
    return Rule(perm)


def on(perm: Perm, extract: Extract) -> Rule:
    return Rule(perm, extract)


def anywhere(perm: Perm) -> Rule:
    return Rule(perm, None, anywhere=True)


@dataclass(frozen=True)
class Access:
    """One caller's permissions: from its roles, and from the grants to it and to its groups."""

    actor: str
    roles: tuple[str, ...]
    grants: tuple[Grant, ...] = ()
    groups: frozenset[str] = frozenset()
    everywhere: frozenset[Perm] = field(init=False)

    def __post_init__(self) -> None:
        perms: set[Perm] = set()
        for role in self.roles:
            if role in ROLE_PERM:
                perms |= IMPLIED[ROLE_PERM[role]]
        object.__setattr__(self, "everywhere", frozenset(perms))

    def at(self, place: Place) -> frozenset[Perm]:
        """Every permission the caller holds on a resource that lives at `place`."""
        perms = set(self.everywhere)
        for g in self.grants:
            if (g.scope_kind == "project" and g.scope == place.project) or (
                (g.scope_kind, g.scope) in place.scopes
            ):
                perms |= IMPLIED[g.perm]
        return frozenset(perms)

    def anywhere(self, perm: Perm) -> bool:
        return perm in self.everywhere or any(perm in IMPLIED[g.perm] for g in self.grants)

    def visible(self, kind: str) -> Visible | None:
        """What a list of `kind` (experiment, model, ...) may show: None when everything."""
        if Perm.READ in self.everywhere:
            return None
        return Visible(
            projects=frozenset(g.scope for g in self.grants if g.scope_kind == "project"),
            keys=frozenset(g.scope for g in self.grants if g.scope_kind == kind),
        )

    def holds(self, perm: Perm, place: Place | None) -> bool:
        return perm in (self.at(place) if place is not None else self.everywhere)


@dataclass(frozen=True)
class Visible:
    """The projects a caller may read everything of, and single resources granted besides."""

    projects: frozenset[str]
    keys: frozenset[str]

    def admits(self, project: str, key: str) -> bool:
        return project in self.projects or key in self.keys


Resolver = Callable[[list[str]], Awaitable[dict[str, Place]]]
"""Looks up where resources of one kind live; keys with no such resource are left out."""


_VERBS = {
    Perm.READ: "read",
    Perm.EDIT: "change",
    Perm.MANAGE: "manage",
    Perm.APPROVE: "approve transitions of",
    Perm.ADMIN: "administer",
}


def _label(kind: str) -> str:
    return {"model": "registered model", NEW_IN: "project"}.get(kind, kind)


def check(rule: Rule, access: Access, method: str, places: Mapping[Resource, Place | None]) -> None:
    """Raise unless `access` satisfies `rule` for the resolved resources (None: no such resource)."""
    perm = rule.perm
    if perm is None:
        return
    short = method.rsplit("/", 1)[-1]
    if rule.anywhere:
        if not access.anywhere(perm):
            raise PermissionDenied(
                f"{access.actor!r} may not call {short}: it needs {perm} on some project ({_held(access)})"
            )
        return
    if rule.resources is None:
        if perm not in access.everywhere:
            raise PermissionDenied(
                f"{access.actor!r} may not call {short}: it needs {perm} on the platform, which "
                f"the admin role gives ({_held(access)})"
            )
        return
    if perm in access.everywhere:
        return
    # A request that may create what it names (StartRun's experiment, a model registered with its
    # first version, an artifact's first version) also names where it would create it (NEW_IN): that
    # project is checked only for names that do not exist yet.
    new_in = [(r, p) for r, p in places.items() if r.kind == NEW_IN]
    targets = [(r, p) for r, p in places.items() if r.kind != NEW_IN]
    if new_in and (not targets or any(p is None for _, p in targets)):
        targets = [(r, p) for r, p in targets if p is not None] + new_in
    for res, place in targets:
        have = access.at(place) if place is not None else access.everywhere
        if place is None and Perm.READ not in have:
            raise NotFound(f"{_label(res.kind)} {res.key!r} not found")
        if perm in have:
            continue
        if Perm.READ not in have:
            raise NotFound(f"{_label(res.kind)} {res.key!r} not found")
        where = f" (project {place.project!r})" if place is not None else ""
        raise PermissionDenied(
            f"{access.actor!r} may not {_VERBS[perm]} {_label(res.kind)} {res.key!r}{where}: it needs "
            f"{perm} there and holds {', '.join(sorted(have)) or 'nothing'} ({_held(access)})"
        )


def _held(access: Access) -> str:
    roles = f"role {', '.join(access.roles)}" if access.roles else "no role"
    return f"{access.actor!r} has {roles} and {len(access.grants)} grant(s)"


PLACED_FOR_GOOD = frozenset({"experiment", "run"})
"""Kinds keyed by an id that never moves to another project: their places are kept once found. Names
(models, artifacts, monitors) are looked up every time: a name can pass to another resource."""
PLACES_KEPT = 100_000

GrantSource = Callable[[str], Awaitable[tuple[tuple[Grant, ...], frozenset[str]]]]
"""A token's grants (its own and its groups') and its groups, from the identity log's view."""


class Authorizer:
    """The table, the resolvers of the resources this process hosts, and the callers' grants."""

    def __init__(
        self,
        rules: Mapping[str, Rule],
        resolvers: Mapping[str, Resolver] | None = None,
        grants: GrantSource | None = None,
    ) -> None:
        self.rules = dict(rules)
        self.resolvers = dict(resolvers or {})
        self.grants = grants
        self._places: OrderedDict[Resource, Place] = OrderedDict()

    def rule(self, method: str) -> Rule | None:
        return self.rules.get(method)

    def uncovered(self, methods: Iterable[str]) -> list[str]:
        """Methods of registered servicers that the table does not name (start-up refuses them)."""
        return [m for m in methods if m not in self.rules]

    async def access(self, actor: str, roles: tuple[str, ...]) -> Access:
        if self.grants is None:
            return Access(actor, roles)
        grants, groups = await self.grants(actor)
        return Access(actor, roles, grants, groups)

    async def authorize(self, rule: Rule, method: str, request: Any, access: Access) -> frozenset[Perm]:
        """Raise unless allowed; return what the caller holds where the request acts (its resource's
        place, or everywhere), which deciders read for rules that depend on who acts (approvals)."""
        if rule.perm is None or rule.anywhere or rule.resources is None:
            check(rule, access, method, {})
            return access.everywhere
        resources = list(rule.resources(request)) or [Resource("project", DEFAULT_PROJECT)]
        if rule.perm in access.everywhere and not access.grants:
            return access.everywhere
        places = await self.places(resources)
        check(rule, access, method, places)
        first = next(iter(places.values()))
        return access.at(first) if first is not None else access.everywhere

    async def places(self, resources: Iterable[Resource]) -> dict[Resource, Place | None]:
        by_kind: dict[str, list[str]] = {}
        for res in resources:
            by_kind.setdefault(res.kind, []).append(res.key)
        found: dict[Resource, Place | None] = {}
        for kind, keys in by_kind.items():
            if kind in PLACED_FOR_GOOD:
                cached = {k: self._places.get(Resource(kind, k)) for k in keys}
                keys = [k for k, place in cached.items() if place is None]
                found.update({Resource(kind, k): p for k, p in cached.items() if p is not None})
                if not keys:
                    continue
            resolver = self.resolvers.get(kind)
            places = await resolver(keys) if resolver is not None else {}
            for key in keys:
                place = places.get(key)
                found[Resource(kind, key)] = place
                if place is not None and kind in PLACED_FOR_GOOD:
                    self._places[Resource(kind, key)] = place
                    while len(self._places) > PLACES_KEPT:
                        self._places.popitem(last=False)
        return found
