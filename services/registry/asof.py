"""Time travel: a model as it stood at an instant, folded by the model decider from the events recorded
up to then. The rules are the decider's (one copy); this module only reads who did what, and when,
from the same events' metadata.

The name is resolved as of the instant too, by folding the name-claim stream: "churn" on 1 March is
the model that held the name then, even if it has been renamed (or the name reused) since.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from eventlog import DomainEvent, EventStore, NotFound, RecordedEvent
from modelog._gen.registry.v1 import registry_pb2 as pb

from . import domain as d
from .events import AliasRemoved, AliasSet, ModelVersionCreated, VersionStageChanged, registry
from .reads import STAGE_ENUM, STATUS_ENUM, ts


@dataclass
class _Provenance:
    """Who and when, per version and alias, from the events' metadata."""

    created: dict[int, tuple[ModelVersionCreated, RecordedEvent]] = field(default_factory=dict)
    staged: dict[int, tuple[VersionStageChanged, RecordedEvent]] = field(default_factory=dict)
    aliases: dict[str, RecordedEvent] = field(default_factory=dict)

    def see(self, e: DomainEvent, r: RecordedEvent) -> None:
        match e:
            case ModelVersionCreated(version=n):
                self.created[n] = (e, r)
            case VersionStageChanged(version=n):
                self.staged[n] = (e, r)
            case AliasSet(alias=alias):
                self.aliases[alias] = r
            case AliasRemoved(alias=alias):
                self.aliases.pop(alias, None)


def _upto(recorded: list[RecordedEvent], at: datetime) -> list[RecordedEvent]:
    return [r for r in recorded if r.occurred_at <= at]


async def _holder(store: EventStore, name: str, at: datetime) -> str:
    claims = await store.read_stream(d.model_name_stream_id(d.check_model_name(name)))
    state = d.name_claim_decider.fold([r.decode(registry) for r in _upto(claims, at)])
    if state.holder is not None:
        return state.holder
    when = at.isoformat()
    if not claims:
        raise NotFound(f"no model has ever been named {name!r}")
    first = claims[0].occurred_at.isoformat()
    if claims[0].occurred_at > at:
        raise NotFound(f"model {name!r} did not exist at {when}; the name was first taken at {first}")
    raise NotFound(f"no model was named {name!r} at {when} (it had been renamed or released by then)")


def _version(state: d.ModelState, v: d.VersionState, prov: _Provenance) -> pb.VersionAsOf:
    created, rec = prov.created[v.version]
    out = pb.VersionAsOf(
        version=v.version,
        stage=STAGE_ENUM[v.stage],
        status=STATUS_ENUM[v.status],
        aliases=state.aliases_of(v.version),
        run_id=created.run.run_id,
        artifact_name=created.artifact.name,
        artifact_version=created.artifact.version,
        manifest_digest=created.artifact.manifest_digest,
        datasets=[pb.LineageDataset(**ds.model_dump()) for ds in created.run.datasets],
        created_by=rec.metadata().acted_by,
        created_at=ts(rec.occurred_at),
        open_request_id=v.open_request or "",
    )
    staged = prov.staged.get(v.version)
    if staged is not None and v.stage != "None":
        change, r = staged
        out.stage_changed_by = r.metadata().acted_by
        out.stage_changed_at.FromDatetime(r.occurred_at)
        request = state.requests.get(change.request_id or "")
        if request is not None:
            out.stage_request_id = request.request_id
            out.stage_requested_by = request.by
            out.stage_approved_by.extend(request.approvals)
    return out


async def model_as_of(store: EventStore, name: str, at: datetime) -> pb.GetModelAsOfResponse:
    model_id = await _holder(store, name, at)
    recorded = _upto(await store.read_stream(d.model_stream_id(model_id)), at)
    if not recorded:
        raise NotFound(f"model {name!r} did not exist yet at {at.isoformat()}")
    prov = _Provenance()
    events = []
    for r in recorded:
        e = r.decode(registry)
        prov.see(e, r)
        events.append(e)
    state = d.model_decider.fold(events)
    last = recorded[-1]
    return pb.GetModelAsOfResponse(
        model_id=state.model_id,
        name=state.name,
        as_of=ts(at),
        position=last.position,
        stream_version=last.stream_version,
        last_event_at=ts(last.occurred_at),
        deleted=state.deleted,
        description=state.description,
        aliases=[
            pb.AliasAsOf(
                alias=a,
                version=n,
                set_by=prov.aliases[a].metadata().acted_by,
                set_at=ts(prov.aliases[a].occurred_at),
            )
            for a, n in sorted(state.aliases.items())
        ],
        production_versions=[v.version for v in state.in_production()],
        versions=[_version(state, v, prov) for _, v in sorted(state.versions.items())],
    )
